// The creator directory in the brand console (market/API.md): filter hosts by tag,
// region and price, sort them, and read their verified figures beside what they say
// of themselves. Pages through `next_after` with "More".

import { api, session } from './api.js';
import { errorMessage } from './messages.js';
import { $, h, money, parseMoney } from './format.js';

const KINDS = { live_segment: 'live segment', shelf_slot: 'shelf slot', note: 'note' };
let next = null;     // the cursor of the next page (null: none)
let query = '';      // the filters and sort of the list shown

function figures(v) {
  if (!v) return 'Verified figures: not computed yet.';
  const gmv = v.gmv.length
    ? v.gmv.map((s) => money(s.gmv_minor, s.currency)).join(' + ')
    : 'none';
  return `Verified (last ${v.window_days} days): ${v.followers} followers · `
    + `peak ${v.peak_concurrent_viewers} viewers · average ${v.avg_concurrent_viewers} · `
    + `average watch ${Math.round(v.avg_watch_s)} s · ${v.orders} orders · GMV ${gmv}`;
}

function services(card) {
  return card.services.map((s) => `${KINDS[s.kind] || s.kind}`
    + `${s.minutes ? ` ${s.minutes} min` : ''} ${money(s.price_minor, s.currency)}`).join(' · ');
}

function item(c) {
  const p = c.profile;
  const said = [p.tags.join(', '), p.region].filter(Boolean).join(' · ');
  return h('li', { dataset: { hostId: c.host_id } },
    h('b', {}, c.display_name),
    said ? h('span', { class: 'muted' }, ` (self-reported: ${said})`) : null,
    h('div', {}, services(c.rate_card)),
    h('div', { class: 'muted', 'data-testid': 'creator-verified' }, figures(c.verified)));
}

async function show(more) {
  const error = $('#creators-error');
  error.textContent = '';
  try {
    const cursor = more && next ? `&after=${encodeURIComponent(next)}` : '';
    const page = await api('GET', `/api/creators?${query}${cursor}`);
    const list = $('#creator-list');
    if (!more) list.replaceChildren();
    list.append(...page.creators.map(item));
    if (!list.children.length) list.append(h('li', { class: 'muted' }, 'No creator matches.'));
    next = page.next_after;
    $('#creators-more').hidden = next === null;
  } catch (err) {
    error.textContent = errorMessage(err);
  }
}

$('#creator-search').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = ev.target;
  const params = new URLSearchParams();
  const tag = form.tag.value.trim().toLowerCase();
  const region = form.region.value.trim().toUpperCase();
  const currency = form.currency.value.trim().toUpperCase();
  if (tag) params.set('tag', tag);
  if (region) params.set('region', region);
  if (form.max_price.value.trim()) {
    const max = currency ? parseMoney(form.max_price.value, currency) : null;
    if (max === null) {
      $('#creators-error').textContent = 'Give the highest price as an amount in a currency, e.g. 200 EUR.';
      return;
    }
    params.set('max_price', String(max));
  }
  if (currency) params.set('currency', currency);
  params.set('sort', form.sort.value);
  query = params.toString();
  show(false);
});
$('#creators-more').addEventListener('click', () => show(true));

function start() {
  const user = session.user();
  $('#creators').hidden = !(user && user.role === 'brand');
}
window.addEventListener('liveshelf:auth', start);
start();
