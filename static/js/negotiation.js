// Negotiating cooperations, for either side: the offers waiting for the caller
// (products, the other party, commission, flat fee, message) with Accept, Decline and
// Counter-offer; the offers waiting for the other party; and the history of every
// agreement, round by round (GET /api/cooperations/{id}/rounds). Proposals, counter-
// offers and decisions arrive live on the account's event stream (user-events.js);
// nothing polls. The host's side (a host, or an agency for its hosts) is coop-inbox.js
// in the studio; the brand's is brand-counters.js in the brand console.
//
// Money is typed as text and sent as integer minor units; rates typed in percent are
// sent as basis points.

import { api, apiAll, session } from './api.js';
import { fractionDigits, h, money, parseMoney } from './format.js';
import { errorMessage } from './messages.js';
import { followUserEvents } from './user-events.js';

/** How the counter-offer form labels the API's fields (messages.js names the rest). */
export const COUNTER_LABELS = { commission_bps: 'Commission %', flat_fee_minor: 'Flat fee',
  flat_fee_currency: 'Fee currency', message: 'Message', round: 'Round' };
const HISTORY_SHOWN = 20;

/** Refused in the page before anything is sent. */
class InputError extends Error {}

/** '12.5' (percent) -> 1250 basis points, 0..100 %, at most two decimals. */
export function percentToBps(text, label = 'Commission %') {
  const t = String(text).trim().replace(',', '.');
  if (t === '') throw new InputError(`${label} is required`);
  const m = /^(\d{1,3})(?:\.(\d{0,2}))?$/.exec(t);
  if (!m) throw new InputError(`${label} is a number from 0 to 100 with at most 2 decimals, e.g. 12.5`);
  const bps = Number(m[1]) * 100 + Number((m[2] || '').padEnd(2, '0'));
  if (bps > 10_000) throw new InputError(`${label} is at most 100`);
  return bps;
}

export const percentText = (bps) => `${(bps / 100).toFixed(2).replace(/\.?0+$/, '')} %`;

export function feeText(minor, currency) {
  if (minor === null || minor === undefined) return 'no flat fee';
  try { return money(minor, currency); } catch { return `${minor} ${currency}`; }
}

/** A text for `err`: the page's own refusals as they are, the API's through messages.js. */
const sentence = (err) => (err instanceof InputError ? err.message : errorMessage(err, { labels: COUNTER_LABELS }));

const ACTION_WORDS = { proposed: 'proposed', countered: 'countered', accepted: 'accepted',
  declined: 'declined', withdrawn: 'withdrew', ended: 'ended' };

function when(iso) {
  return iso ? new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }) : '';
}

/** Mounts the panel after `anchor` for `user` negotiating as `party` ('host': a host
 * or an agency for its hosts; 'brand'); returns what unmounts it. */
export function mountNegotiation(user, { party, anchor, title }) {
  const isAgency = user.role === 'agency';
  const otherParty = party === 'host' ? 'brand' : 'host';
  const coops = new Map();    // id -> cooperation
  const history = new Map();  // id -> { brand, host, rounds }
  const products = new Map(); // id -> product (or null: unreadable)

  const news = h('p', { class: 'muted', role: 'status', 'aria-live': 'polite', 'data-testid': 'inbox-news' });
  const error = h('p', { class: 'form-error', role: 'alert', 'data-testid': 'inbox-error' });
  const waiting = h('ul', { class: 'coop-list', 'data-testid': 'inbox-waiting', 'aria-label': 'waiting for you' });
  const sent = h('ul', { class: 'coop-list', 'data-testid': 'inbox-sent', 'aria-label': `waiting for the ${otherParty}` });
  const done = h('ul', { class: 'coop-list', 'data-testid': 'inbox-history', 'aria-label': 'history' });
  const live = h('span', { class: 'muted small', 'data-testid': 'inbox-stream' }, 'connecting…');
  const panel = h('section', { class: 'panel coop-inbox', id: 'coop-inbox', 'aria-labelledby': 'coop-inbox-title',
    'data-testid': 'coop-inbox' },
    h('div', { class: 'row' }, h('h2', { id: 'coop-inbox-title', class: 'grow' }, title), live),
    news, error,
    h('h3', {}, 'Waiting for you'), waiting,
    h('h3', {}, `Waiting for the ${otherParty}`), sent,
    h('h3', {}, 'History'), done);

  const brandName = (c) => history.get(c.id)?.brand.display_name || `brand #${c.brand_id}`;
  const hostName = (c) => history.get(c.id)?.host.display_name || `host #${c.host_id}`;
  /** The other side's name, as this side reads it. */
  const otherName = (c) => (party === 'host' ? brandName(c) : hostName(c));
  const productTitles = (c) => c.product_ids
    .map((id) => products.get(id)?.title || `product #${id}`).join(', ');
  const lastMessage = (c) => {
    const steps = history.get(c.id)?.rounds || [];
    const offer = [...steps].reverse().find((s) => s.action === 'proposed' || s.action === 'countered');
    return offer?.message || '';
  };

  async function loadProducts(ids) {
    const unknown = [...new Set(ids)].filter((id) => !products.has(id));
    await Promise.all(unknown.map(async (id) => {
      products.set(id, await api('GET', `/api/products/${id}`).catch(() => null));
    }));
  }

  async function loadHistory(id) {
    history.set(id, await api('GET', `/api/cooperations/${id}/rounds`));
  }

  async function act(c, action, body, item) {
    error.textContent = '';
    const button = item.querySelectorAll('button');
    button.forEach((b) => { b.disabled = true; });
    try {
      const updated = await api('POST', `/api/cooperations/${c.id}/${action}`, body);
      coops.set(updated.id, updated);
      await loadHistory(updated.id);
      news.textContent = {
        accept: `You accepted the agreement with ${otherName(updated)}.`,
        decline: `You declined the offer from ${otherName(updated)}.`,
        counter: `Your counter-offer went to ${otherName(updated)}.`,
      }[action];
      if (action === 'accept') window.dispatchEvent(new CustomEvent('liveshelf:agreements'));
    } catch (err) {
      error.textContent = sentence(err);
      // the offer may have changed meanwhile: show it as it is now
      if (err.status === 409) await refreshOne(c.id).catch(() => {});
    }
    render();
  }

  function counterForm(c, item) {
    const currency = c.flat_fee_currency || 'EUR';
    const fields = {
      commission: h('input', { name: 'counter_commission', inputmode: 'decimal', size: 6,
        value: String(c.commission_bps / 100) }),
      fee: h('input', { name: 'counter_fee', inputmode: 'decimal', size: 9, placeholder: 'none' }),
      currency: h('input', { name: 'counter_currency', maxlength: 3, size: 4, value: currency }),
      message: h('textarea', { name: 'counter_message', maxlength: 500, rows: 2 }),
    };
    // the fee as an edit box shows it: exact, from the minor units
    if (c.flat_fee_minor !== null && c.flat_fee_minor !== undefined) {
      const digits = fractionDigits(currency);
      const s = String(c.flat_fee_minor).padStart(digits + 1, '0');
      fields.fee.value = digits ? `${s.slice(0, -digits)}.${s.slice(-digits)}` : s;
    }
    const formError = h('p', { class: 'form-error', role: 'alert' });
    const label = (text, input) => h('label', { class: 'field' }, h('span', {}, text), input);
    const form = h('form', { class: 'counter-form', hidden: true, novalidate: true,
      'aria-label': `counter-offer for agreement ${c.id}`,
      onsubmit: async (ev) => {
        ev.preventDefault();
        formError.textContent = '';
        const body = { round: c.round };
        try {
          const bps = percentToBps(fields.commission.value);
          if (bps !== c.commission_bps) body.commission_bps = bps;
          const feeText = fields.fee.value.trim();
          if (feeText === '') {
            if (c.flat_fee_minor !== null) body.flat_fee_minor = null;
          } else {
            const code = fields.currency.value.trim().toUpperCase();
            if (!/^[A-Z]{3}$/.test(code)) throw new InputError('Fee currency is a three-letter code such as EUR');
            const minor = parseMoney(feeText, code);
            if (minor === null) throw new InputError(`Flat fee must be an amount in ${code}, e.g. 150.00`);
            if (minor !== c.flat_fee_minor) body.flat_fee_minor = minor;
            if (code !== c.flat_fee_currency) body.flat_fee_currency = code;
          }
          const text = fields.message.value.trim();
          if (text) body.message = text;
          if (Object.keys(body).every((k) => k === 'round' || k === 'message')) {
            throw new InputError('Change the commission or the flat fee to make a counter-offer');
          }
        } catch (err) {
          formError.textContent = sentence(err);
          return;
        }
        await act(c, 'counter', body, item);
      } },
    label('Commission %', fields.commission),
    label('Flat fee', fields.fee),
    label('Fee currency', fields.currency),
    label('Message', fields.message),
    h('div', { class: 'row' },
      h('button', { type: 'submit' }, 'Send counter-offer'),
      h('button', { type: 'button', class: 'secondary', onclick: () => { form.hidden = true; } }, 'Cancel')),
    formError);
    return form;
  }

  function historyList(c) {
    const steps = history.get(c.id)?.rounds || [];
    return h('details', { class: 'coop-history' },
      h('summary', {}, `History (${steps.length} step${steps.length === 1 ? '' : 's'})`),
      h('ol', { 'data-testid': 'coop-rounds' }, steps.map((s) => h('li', { dataset: { action: s.action } },
        `Round ${s.round}: ${s.party === 'brand' ? brandName(c) : hostName(c)} ${ACTION_WORDS[s.action] || s.action} · `
        + `${percentText(s.commission_bps)}, ${feeText(s.flat_fee_minor, s.flat_fee_currency)}`,
        s.message ? h('q', {}, ` ${s.message}`) : null,
        h('span', { class: 'muted' }, ` · ${when(s.at)}`)))));
  }

  function item(c) {
    const li = h('li', { class: 'coop-item', dataset: { cooperationId: c.id, status: c.status, turn: c.turn } });
    const mine = c.status === 'proposed' && c.turn === party;
    const message = lastMessage(c);
    li.append(
      h('p', {}, h('strong', {}, productTitles(c)),
        party === 'host' ? ` from ${brandName(c)}` : ` with ${hostName(c)}`,
        isAgency ? h('span', { class: 'muted' }, ` · for ${hostName(c)}`) : null),
      h('p', { 'data-testid': 'coop-terms' },
        `Commission ${percentText(c.commission_bps)} · ${feeText(c.flat_fee_minor, c.flat_fee_currency)}`,
        h('span', { class: 'muted' }, ` · round ${c.round}`),
        c.status !== 'proposed' ? h('span', { class: 'badge' }, ` ${c.status}`) : null),
      message ? h('p', { class: 'coop-message' }, h('q', {}, message)) : null);
    if (mine) {
      const form = counterForm(c, li);
      li.append(h('div', { class: 'row coop-actions' },
        h('button', { type: 'button', onclick: () => act(c, 'accept', { round: c.round }, li) }, 'Accept'),
        h('button', { type: 'button', class: 'secondary', onclick: () => act(c, 'decline', { round: c.round }, li) }, 'Decline'),
        h('button', { type: 'button', class: 'secondary', 'aria-expanded': 'false', onclick: (ev) => {
          form.hidden = !form.hidden;
          ev.currentTarget.setAttribute('aria-expanded', String(!form.hidden));
          if (!form.hidden) form.querySelector('input').focus();
        } }, 'Counter-offer')), form);
    } else if (c.status === 'proposed') {
      li.append(h('p', { class: 'muted' }, `Waiting for ${otherName(c)} to answer.`));
    }
    li.append(historyList(c));
    return li;
  }

  function render() {
    const all = [...coops.values()].sort((a, b) => b.id - a.id);
    const fill = (list, items, empty) => list.replaceChildren(...(items.length ? items.map(item)
      : [h('li', { class: 'muted' }, empty)]));
    fill(waiting, all.filter((c) => c.status === 'proposed' && c.turn === party), 'Nothing waits for you.');
    fill(sent, all.filter((c) => c.status === 'proposed' && c.turn === otherParty), `No offer waits for a ${otherParty}.`);
    fill(done, all.filter((c) => c.status !== 'proposed').slice(0, HISTORY_SHOWN), 'No agreement yet.');
  }

  async function refreshOne(id) {
    const c = await api('GET', `/api/cooperations/${id}`);
    coops.set(id, c);
    await Promise.all([loadProducts(c.product_ids), loadHistory(id)]);
  }

  async function load() {
    try {
      const { items } = await apiAll('/api/cooperations?limit=100', 'cooperations');
      coops.clear();
      for (const c of items) coops.set(c.id, c);
      const shown = items.filter((c) => c.status === 'proposed')
        .concat(items.filter((c) => c.status !== 'proposed').slice(0, HISTORY_SHOWN));
      await Promise.all([loadProducts(shown.flatMap((c) => c.product_ids)),
        ...shown.map((c) => loadHistory(c.id))]);
      error.textContent = '';
    } catch (err) {
      error.textContent = sentence(err);
    }
    render();
  }

  async function heard(type, data) {
    if (!type.startsWith('cooperation.') || !data || !data.cooperation) return;
    const c = data.cooperation;
    const known = coops.get(c.id);
    if (known && known.round > c.round) return; // an older step than what is shown
    coops.set(c.id, c);
    try {
      await Promise.all([loadProducts(c.product_ids), loadHistory(c.id)]);
    } catch (err) {
      error.textContent = sentence(err);
    }
    const step = data.step || {};
    if (step.party === otherParty) {
      news.textContent = {
        proposed: `New proposal from ${otherName(c)}: ${productTitles(c)}.`,
        countered: `${otherName(c)} answered with a counter-offer: ${percentText(c.commission_bps)}, `
          + `${feeText(c.flat_fee_minor, c.flat_fee_currency)}.`,
        accepted: `${otherName(c)} accepted: ${productTitles(c)}.`,
        declined: `${otherName(c)} declined: ${productTitles(c)}.`,
        withdrawn: `${otherName(c)} withdrew a proposal.`,
        ended: `${otherName(c)} ended an agreement.`,
      }[step.action] || news.textContent;
    }
    if (c.status === 'accepted') window.dispatchEvent(new CustomEvent('liveshelf:agreements'));
    render();
  }

  if (!document.querySelector('link[href="/static/css/negotiation.css"]')) {
    document.head.append(h('link', { rel: 'stylesheet', href: '/static/css/negotiation.css' }));
  }
  anchor.after(panel);
  render();
  let loaded = load();
  const stop = followUserEvents({
    onHello: (hello) => {
      // a fresh stream or one that could not resume: what it missed comes from the API
      if (!hello.recovered) loaded = loaded.then(load);
    },
    onEvent: (type, data) => { loaded = loaded.then(() => heard(type, data)); },
    onState: (state) => {
      live.textContent = { live: 'live', reconnecting: 'reconnecting…', 'signed-out': '' }[state] ?? '';
      live.dataset.state = state;
    },
  });
  return () => { stop(); panel.remove(); };
}

