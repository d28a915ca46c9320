// The host's rate card in the studio (market/API.md): the current version's services
// as a draft, services added or removed in the page, then published as a new version
// (PUT /api/hosts/{id}/rate-card with the version the draft started from).

import { api, session } from './api.js';
import { errorMessage } from './messages.js';
import { $, h, money, parseMoney } from './format.js';

const KINDS = { live_segment: 'Live segment', shelf_slot: 'Shelf slot' };
const LABELS = { services: 'A service' };

let draft = [];      // the services to publish, as the API takes them
let version = 0;     // the version the draft started from (0: none yet)

function line(s) {
  const parts = [KINDS[s.kind] || s.kind];
  if (s.minutes) parts.push(`${s.minutes} min`);
  parts.push(money(s.price_minor, s.currency), `${s.turnaround_days} days`);
  if (s.description) parts.push(s.description);
  return parts.join(' · ');
}

function render() {
  $('#rate-card-current').textContent = version
    ? `Version ${version} is published. Publishing makes version ${version + 1}; `
      + 'bookings keep the version they were made on.'
    : 'No rate card published yet.';
  const list = $('#rate-card-services');
  list.replaceChildren(...draft.map((s, i) => h('li', { class: 'row' },
    h('span', { class: 'grow' }, line(s)),
    h('button', {
      type: 'button',
      'aria-label': `remove ${line(s)}`,
      onclick: () => { draft.splice(i, 1); render(); },
    }, 'Remove'))));
  $('#rc-publish').disabled = draft.length === 0;
}

function fail(err) {
  $('#rate-card-error').textContent = err ? errorMessage(err, { labels: LABELS }) : '';
}

async function load() {
  const user = session.user();
  if (!user || user.role !== 'host') return;
  try {
    const card = await api('GET', `/api/hosts/${user.id}/rate-card`);
    version = card.version;
    draft = card.services.map(({ id, ...rest }) => rest);
  } catch (err) {
    if (err.code !== 'rate_card_not_found') fail(err);
    version = 0;
    draft = [];
  }
  render();
}

$('#rc-kind').addEventListener('change', () => {
  $('#rc-minutes-label').hidden = $('#rc-kind').value !== 'live_segment';
});

$('#rate-card-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  fail(null);
  const currency = $('#rc-currency').value.trim().toUpperCase();
  const price = /^[A-Z]{3}$/.test(currency) ? parseMoney($('#rc-price').value, currency) : null;
  if (price === null || price <= 0) {
    fail(new Error('Price must be an amount above zero in the currency, e.g. 120.00 EUR.'));
    return;
  }
  const service = {
    kind: $('#rc-kind').value,
    price_minor: price,
    currency,
    turnaround_days: Number($('#rc-days').value),
  };
  if (service.kind === 'live_segment') service.minutes = Number($('#rc-minutes').value);
  const description = $('#rc-description').value.trim();
  if (description) service.description = description;
  draft.push(service);
  $('#rc-price').value = '';
  $('#rc-description').value = '';
  render();
});

$('#rc-publish').addEventListener('click', async () => {
  fail(null);
  try {
    const card = await api('PUT', `/api/hosts/${session.user().id}/rate-card`,
      { services: draft, base_version: version });
    version = card.version;
    draft = card.services.map(({ id, ...rest }) => rest);
    render();
  } catch (err) {
    fail(err);
  }
});

window.addEventListener('liveshelf:auth', () => load());
load();
