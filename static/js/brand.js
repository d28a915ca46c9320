// The brand console (/brand): catalogue, cooperation proposals, sessions showing the
// brand's products, and sales with commission owed per host.
//
// Money is sent as integer minor units, parsed from the typed text digit by digit
// (never through a float); rates are typed in percent and sent as basis points.

import { api, apiAll, session } from '/static/js/api.js';
import { mountAuth } from '/static/js/auth.js';
import { RoomClient } from '/static/js/room.js';
import { $, fractionDigits, h, money } from '/static/js/format.js';
import { errorMessage } from '/static/js/messages.js';
import { figuresData, figuresText, stockFigures } from '/static/js/shelfstate.js';

const REFRESH_MS = 10_000;
// Flash sales waiting for the brand are looked for more often: the show is live.
const APPROVALS_MS = 3_000;
// What in a show's room moves the brand's stock figures (read again when one comes).
const STOCK_EVENTS = ['hello', 'stock.changed', 'flash.scheduled', 'flash.started',
  'flash.ended', 'flash.cancelled'];
const MAX_DIGITS = 15; // integer strings up to here are exact as JS numbers

/** Input the page refuses before sending anything. */
class InputError extends Error {}

// -- money and rates typed by people ----------------------------------------------------

/** 'eur ' -> 'EUR'; refuses anything but three letters. */
function currencyCode(text) {
  const code = String(text).trim().toUpperCase();
  if (!/^[A-Z]{3}$/.test(code)) throw new InputError('Currency is a three-letter code such as EUR');
  return code;
}

/** '19.99' with 2 digits -> 1999. Refuses negatives, too many decimals, non-numbers. */
function parseDecimal(text, digits, label) {
  const t = String(text).trim();
  if (t === '') throw new InputError(`${label} is required`);
  if (t.startsWith('-')) throw new InputError(`${label} cannot be negative`);
  const m = /^(\d*)(?:[.,](\d*))?$/.exec(t);
  if (!m || (m[1] === '' && !m[2])) throw new InputError(`${label} must be a number, e.g. 19.99`);
  const frac = m[2] || '';
  if (frac.length > digits) {
    throw new InputError(digits === 0
      ? `${label} takes no decimals here`
      : `${label} has at most ${digits} decimal${digits === 1 ? '' : 's'}`);
  }
  const whole = (m[1] || '0').replace(/^0+(?=\d)/, '');
  const units = whole + frac.padEnd(digits, '0');
  if (units.length > MAX_DIGITS) throw new InputError(`${label} is too large`);
  return Number(units);
}

/** 1999 with 2 digits -> '19.99' (what an edit box shows). */
function minorText(minor, digits) {
  if (digits === 0) return String(minor);
  const s = String(minor).padStart(digits + 1, '0');
  return `${s.slice(0, -digits)}.${s.slice(-digits)}`;
}

const toMinor = (text, currency, label = 'Price') =>
  parseDecimal(text, fractionDigits(currency), label);

/** '12.5' (percent) -> 1250 basis points, 0..100 %. */
function percentToBps(text, label = 'Commission') {
  const bps = parseDecimal(text, 2, label);
  if (bps > 10_000) throw new InputError(`${label} is at most 100 %`);
  return bps;
}

const bpsText = (bps) => `${minorText(bps, 2).replace(/\.?0+$/, '')} %`;

/** An agreement's flash-sale terms in a few words. */
function flashTerms(c) {
  if (c.flash_min_price_bps === null || c.flash_min_price_bps === undefined) return 'none';
  const cap = c.flash_max_units ? `, ≤ ${c.flash_max_units} units` : '';
  const beyond = c.flash_ask_brand ? '; beyond: ask me' : '';
  return `from ${bpsText(c.flash_min_price_bps)}${cap}${beyond}`;
}

function parseCount(text, label) {
  const t = String(text).trim();
  if (t.startsWith('-')) throw new InputError(`${label} cannot be negative`);
  if (!/^\d+$/.test(t)) throw new InputError(`${label} must be a whole number`);
  if (t.length > 9) throw new InputError(`${label} is too large`);
  return Number(t);
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }) : '';
}

/** A wide table that scrolls inside its box (focusable, so the keyboard scrolls it
 * too), with a hint that shows on narrow screens (app.css). */
const scrollBox = (label, table) => [
  h('p', { class: 'muted scroll-hint' }, 'Scroll the table sideways to see every column →'),
  h('div', { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': `${label} table` }, table)];

/** The API's fields as this page labels them (messages.js names the rest). */
const PRODUCT_LABELS = { title: 'Title', price_minor: 'Price', stock: 'Stock', image_url: 'Image URL' };
const PROPOSAL_LABELS = { flat_fee_minor: 'Flat fee', flat_fee_currency: 'Fee currency',
  flash_min_price_bps: 'Flash price floor', flash_max_units: 'Units per flash sale',
  flash_ask_brand: 'Beyond these: ask me', product_ids: 'Products', host_id: 'Host' };

const field = (label, input, extra = {}) =>
  h('label', { class: `field ${extra.class || ''}` }, h('span', {}, label), input);

// -- the console --------------------------------------------------------------------

function mountConsole(root, brand) {
  const state = {
    products: [],
    allProducts: true, // false: the catalogue is longer than the pages fetched
    showArchived: false,
    cooperations: [],
    hostNames: new Map(),
    sessions: [],
    sales: null,
  };
  const productTitle = (id) => {
    const p = state.products.find((x) => x.id === id);
    return p ? p.title : `product #${id}`;
  };
  const hostName = (id) => state.hostNames.get(id) || `host #${id}`;

  // -- products ----------------------------------------------------------------------

  const productStatus = h('p', { class: 'form-error', role: 'alert', 'data-testid': 'product-error' });
  const productNote = h('p', { class: 'muted note', 'aria-live': 'polite' });
  const productBody = h('tbody');
  const archivedToggle = h('input', { type: 'checkbox', name: 'show_archived',
    onchange: () => { state.showArchived = archivedToggle.checked; renderProducts(); } });
  const form = {
    title: h('input', { name: 'title', required: true, maxlength: 200, placeholder: 'Merino scarf' }),
    price: h('input', { name: 'price', inputmode: 'decimal', placeholder: '19.99', size: 8 }),
    currency: h('input', { name: 'currency', value: 'EUR', maxlength: 3, size: 4,
      autocapitalize: 'characters' }),
    stock: h('input', { name: 'stock', inputmode: 'numeric', placeholder: '100', size: 6 }),
    commission: h('input', { name: 'commission', inputmode: 'decimal', placeholder: '15', size: 5 }),
    image: h('input', { name: 'image_url', type: 'url', placeholder: 'https://… (optional)' }),
  };

  async function createProduct(ev) {
    ev.preventDefault();
    productStatus.textContent = '';
    productNote.textContent = '';
    let body;
    try {
      const currency = currencyCode(form.currency.value);
      const title = form.title.value.trim();
      if (!title) throw new InputError('Title is required');
      body = {
        title,
        price_minor: toMinor(form.price.value, currency),
        currency,
        stock: parseCount(form.stock.value, 'Stock'),
        commission_bps: percentToBps(form.commission.value),
      };
      const image = form.image.value.trim();
      if (image) body.image_url = image;
    } catch (err) {
      productStatus.textContent = errorMessage(err);
      return;
    }
    try {
      const product = await api('POST', '/api/products', body);
      productNote.textContent = `Added “${product.title}”.`;
      for (const key of ['title', 'price', 'stock', 'commission', 'image']) form[key].value = '';
      await loadProducts();
    } catch (err) {
      productStatus.textContent = errorMessage(err, { currency: body.currency, labels: PRODUCT_LABELS });
    }
  }

  async function patchProduct(product, changes) {
    productStatus.textContent = '';
    productNote.textContent = '';
    try {
      const edited = await api('PATCH', `/api/products/${product.id}`, changes);
      const what = [];
      if ('price_minor' in changes) what.push(`price ${money(edited.price_minor, edited.currency)}`);
      if ('stock' in changes) what.push(`stock ${edited.stock}`);
      productNote.textContent = `Saved “${edited.title}”: ${what.join(', ')}.`;
      await loadProducts();
    } catch (err) {
      productStatus.textContent = `${product.title}: ${errorMessage(err,
        { currency: product.currency, labels: PRODUCT_LABELS, product })}`;
    }
  }

  /** A small edit-in-place form: one input and a Save button. */
  function inlineEdit(name, value, product, toChanges, unit = null) {
    const input = h('input', { name, value, size: 7, 'aria-label': `${name} of ${product.title}` });
    return h('form', { class: 'inline', onsubmit: async (ev) => {
      ev.preventDefault();
      let changes;
      try {
        changes = toChanges(input.value);
      } catch (err) {
        productStatus.textContent = `${product.title}: ${errorMessage(err)}`;
        return;
      }
      await patchProduct(product, changes);
    } }, input, unit && h('span', { class: 'muted unit' }, unit),
    h('button', { type: 'submit', class: 'secondary small' }, 'Save'));
  }

  function productRow(p) {
    const digits = fractionDigits(p.currency);
    const archive = async () => {
      if (!window.confirm(`Archive “${p.title}”? It can no longer be proposed, shelved or sold.`)) return;
      productStatus.textContent = '';
      try {
        await api('POST', `/api/products/${p.id}/archive`);
        productNote.textContent = `Archived “${p.title}”.`;
        await loadProducts();
      } catch (err) {
        productStatus.textContent = errorMessage(err);
      }
    };
    const image = p.image_url
      ? h('img', { class: 'thumb', src: p.image_url, alt: '', loading: 'lazy',
        onerror: (ev) => ev.target.replaceWith(h('span', { class: 'thumb empty' })) })
      : h('span', { class: 'thumb empty' });
    return h('tr', { dataset: { productId: p.id }, class: p.archived ? 'archived' : null },
      h('td', {}, image),
      h('td', { class: 'title-cell' }, h('strong', {}, p.title), h('br'),
        h('span', { class: 'muted' }, `#${p.id}`)),
      h('td', {}, p.archived ? money(p.price_minor, p.currency)
        : inlineEdit('price', minorText(p.price_minor, digits), p,
          (text) => ({ price_minor: toMinor(text, p.currency) }), p.currency)),
      h('td', {}, p.archived ? String(p.stock)
        : inlineEdit('stock', String(p.stock), p, (text) => ({ stock: parseCount(text, 'Stock') })),
      stockLine(p)),
      h('td', {}, bpsText(p.commission_bps)),
      h('td', {}, p.archived ? h('span', { class: 'badge' }, 'archived')
        : h('button', { type: 'button', class: 'secondary small', onclick: archive }, 'Archive')));
  }

  // -- stock: regular, flash and reserved units told apart (shelfstate.js), live ------

  /** The product's units in every show, as the API's `stock_figures` says. */
  function stockLine(p) {
    const el = h('div', { class: 'muted small stock-figures', dataset: { figuresFor: p.id } });
    return showFigures(el, p);
  }

  function showFigures(el, p) {
    const fig = stockFigures(p);
    el.textContent = fig ? figuresText(fig, (minor) => money(minor, p.currency)) : '';
    for (const key of ['regular', 'flash', 'reserved', 'flashPrice', 'running']) delete el.dataset[key];
    Object.assign(el.dataset, figuresData(fig));
    return el;
  }

  /** Reads the products' figures again and shows them without redrawing the table (a
   * stock being typed stays); on each stock or flash-sale event of a live show that
   * carries the brand's products (``followRooms``), so a reservation, sales and the
   * end of a sale show at once. */
  async function refreshFigures() {
    const { items } = await apiAll(
      `/api/brands/${brand.id}/products?include_archived=1&limit=50`, 'products');
    const byId = new Map(items.map((p) => [p.id, p]));
    state.products = state.products.map((known) => {
      const fresh = byId.get(known.id);
      if (!fresh) return known;
      const row = productBody.querySelector(`tr[data-product-id="${fresh.id}"]`);
      const el = row?.querySelector('.stock-figures');
      if (el) showFigures(el, fresh);
      const input = row?.querySelector('input[name=stock]');
      if (input && document.activeElement !== input && input.value === String(known.stock)) {
        input.value = String(fresh.stock);
      }
      return { ...known, stock: fresh.stock, stock_version: fresh.stock_version,
        stock_figures: fresh.stock_figures };
    });
  }

  function renderProducts() {
    const shown = state.products.filter((p) => state.showArchived || !p.archived);
    productBody.replaceChildren(...(shown.length ? shown.map(productRow)
      : [h('tr', {}, h('td', { colspan: 6, class: 'muted' },
        state.products.length ? 'Every product is archived.' : 'No products yet: add your first one above.'))]),
    ...(state.allProducts ? [] : [h('tr', {}, h('td', { colspan: 6, class: 'muted' },
      `Only the newest ${state.products.length} products are shown.`))]));
    renderProposalProducts();
  }

  async function loadProducts() {
    // The catalogue comes a page at a time (at most 50 products a page).
    const { items, complete } = await apiAll(
      `/api/brands/${brand.id}/products?include_archived=1&limit=50`, 'products');
    state.products = items;
    state.allProducts = complete;
    renderProducts();
  }

  const productsPanel = h('section', { class: 'panel', id: 'products' },
    h('div', { class: 'row panel-head' }, h('h2', { class: 'grow' }, 'Products'),
      h('label', { class: 'muted' }, archivedToggle, ' Show archived')),
    h('form', { class: 'form-grid', novalidate: true, onsubmit: createProduct,
      'aria-label': 'new product' },
    field('Title', form.title, { class: 'wide' }),
    field('Price', form.price),
    field('Currency', form.currency),
    field('Stock', form.stock),
    field('Commission %', form.commission),
    field('Image URL', form.image, { class: 'wide' }),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Add product'))),
    productStatus, productNote,
    scrollBox('Products', h('table', { class: 'products' },
      h('thead', {}, h('tr', {}, h('th', {}, ''), h('th', {}, 'Product'), h('th', {}, 'Price'),
        h('th', {}, 'Stock'), h('th', {}, 'Commission'), h('th', {}, ''))),
      productBody)));

  // -- cooperations ------------------------------------------------------------------

  const coopStatus = h('p', { class: 'form-error', role: 'alert', 'data-testid': 'cooperation-error' });
  const coopNote = h('p', { class: 'muted note', 'aria-live': 'polite' });
  const coopBody = h('tbody');
  const hostSearch = h('input', { type: 'search', name: 'host_search', placeholder: 'Search hosts by name',
    'aria-label': 'search hosts', oninput: () => searchHostsSoon() });
  const hostSelect = h('select', { name: 'host_id', 'aria-label': 'host' },
    h('option', { value: '' }, 'Type to search hosts'));
  const proposalProducts = h('div', { class: 'checks', role: 'group', 'aria-label': 'products to propose' });
  const proposal = {
    commission: h('input', { name: 'proposal_commission', inputmode: 'decimal', placeholder: '12', size: 5 }),
    fee: h('input', { name: 'flat_fee', inputmode: 'decimal', placeholder: 'optional', size: 8 }),
    feeCurrency: h('input', { name: 'flat_fee_currency', value: 'EUR', maxlength: 3, size: 4 }),
    note: h('input', { name: 'note', maxlength: 500, placeholder: 'optional' }),
    // flash sales: none unless a floor is given (the lowest price, in % of the regular one)
    flashFloor: h('input', { name: 'flash_min_price', inputmode: 'decimal', placeholder: 'no flash sales', size: 12 }),
    flashCap: h('input', { name: 'flash_max_units', inputmode: 'numeric', placeholder: 'no cap', size: 8 }),
    // a sale below the floor or over the cap waits for the brand instead of being refused
    flashAsk: h('input', { type: 'checkbox', name: 'flash_ask_brand' }),
  };
  let searchTimer = null;
  let searchSeq = 0;

  function searchHostsSoon() {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(searchHosts, 200);
  }

  async function searchHosts() {
    const seq = ++searchSeq;
    const q = hostSearch.value.trim();
    try {
      const { hosts } = await api('GET', `/api/hosts?q=${encodeURIComponent(q)}&limit=20`);
      if (seq !== searchSeq) return; // a newer search is on its way
      for (const host of hosts) state.hostNames.set(host.id, host.display_name);
      hostSelect.replaceChildren(...(hosts.length
        ? hosts.map((host) => h('option', { value: host.id }, `${host.display_name} (#${host.id})`))
        : [h('option', { value: '' }, 'No host matches')]));
    } catch (err) {
      coopStatus.textContent = errorMessage(err, { labels: PROPOSAL_LABELS });
    }
  }

  function renderProposalProducts() {
    const chosen = new Set([...proposalProducts.querySelectorAll('input:checked')].map((i) => i.value));
    const active = state.products.filter((p) => !p.archived);
    proposalProducts.replaceChildren(...(active.length ? active.map((p) => h('label', { class: 'check' },
      h('input', { type: 'checkbox', name: 'product_ids', value: String(p.id),
        checked: chosen.has(String(p.id)) }),
      ` ${p.title}`)) : [h('span', { class: 'muted' }, 'Add a product first.')]));
  }

  async function propose(ev) {
    ev.preventDefault();
    coopStatus.textContent = '';
    coopNote.textContent = '';
    let body;
    try {
      const hostId = Number(hostSelect.value);
      if (!hostId) throw new InputError('Choose a host (search by name)');
      const productIds = [...proposalProducts.querySelectorAll('input:checked')].map((i) => Number(i.value));
      if (!productIds.length) throw new InputError('Tick at least one product');
      body = { host_id: hostId, product_ids: productIds,
        commission_bps: percentToBps(proposal.commission.value) };
      if (proposal.fee.value.trim()) {
        const currency = currencyCode(proposal.feeCurrency.value);
        body.flat_fee_minor = toMinor(proposal.fee.value, currency, 'Flat fee');
        body.flat_fee_currency = currency;
      }
      const note = proposal.note.value.trim();
      if (note) body.note = note;
      if (proposal.flashFloor.value.trim()) {
        body.flash_min_price_bps = percentToBps(proposal.flashFloor.value, 'Flash price floor');
        if (body.flash_min_price_bps < 1) throw new InputError('Flash price floor must be above 0 %');
      }
      if (proposal.flashCap.value.trim()) {
        body.flash_max_units = parseCount(proposal.flashCap.value, 'Units per flash sale');
      }
      if (proposal.flashAsk.checked) {
        if (body.flash_min_price_bps === undefined) throw new InputError('Asking about flash sales beyond the terms needs a flash price floor');
        body.flash_ask_brand = true;
      }
    } catch (err) {
      coopStatus.textContent = errorMessage(err, { labels: PROPOSAL_LABELS });
      return;
    }
    try {
      const coop = await api('POST', '/api/cooperations', body);
      coopNote.textContent = `Proposed to ${hostName(coop.host_id)}.`;
      for (const box of proposalProducts.querySelectorAll('input:checked')) box.checked = false;
      proposal.commission.value = '';
      proposal.fee.value = '';
      proposal.note.value = '';
      proposal.flashFloor.value = '';
      proposal.flashCap.value = '';
      proposal.flashAsk.checked = false;
      await loadCooperations();
    } catch (err) {
      coopStatus.textContent = errorMessage(err,
        { labels: PROPOSAL_LABELS, currency: body.flat_fee_currency });
    }
  }

  async function coopAction(coop, action, label) {
    coopStatus.textContent = '';
    coopNote.textContent = '';
    try {
      await api('POST', `/api/cooperations/${coop.id}/${action}`);
      coopNote.textContent = `${label}: agreement #${coop.id}.`;
      await loadCooperations();
    } catch (err) {
      coopStatus.textContent = errorMessage(err, { labels: PROPOSAL_LABELS });
    }
  }

  function coopRow(c) {
    const badgeClass = { accepted: 'badge ok', proposed: 'badge warn' }[c.status] || 'badge';
    let action = null;
    if (c.status === 'proposed') {
      action = h('button', { type: 'button', class: 'secondary small',
        onclick: () => coopAction(c, 'withdraw', 'Withdrawn') }, 'Withdraw');
    } else if (c.status === 'accepted') {
      action = h('button', { type: 'button', class: 'secondary small', onclick: () => {
        if (window.confirm(`End agreement #${c.id} with ${hostName(c.host_id)}?`)) coopAction(c, 'end', 'Ended');
      } }, 'End');
    }
    const fee = c.flat_fee_minor === null || c.flat_fee_minor === undefined
      ? '—' : money(c.flat_fee_minor, c.flat_fee_currency);
    return h('tr', { dataset: { cooperationId: c.id } },
      h('td', {}, `#${c.id}`),
      h('td', {}, hostName(c.host_id)),
      h('td', {}, c.product_ids.map(productTitle).join(', ')),
      h('td', {}, bpsText(c.commission_bps)),
      h('td', {}, fee),
      h('td', { 'data-testid': 'flash-terms' }, flashTerms(c)),
      h('td', {}, h('span', { class: badgeClass, 'data-testid': 'cooperation-status' }, c.status)),
      h('td', { class: 'muted' }, when(c.decided_at || c.created_at)),
      h('td', {}, action));
  }

  function renderCooperations() {
    coopBody.replaceChildren(...(state.cooperations.length ? state.cooperations.map(coopRow)
      : [h('tr', {}, h('td', { colspan: 8, class: 'muted' }, 'No proposals yet.'))]));
  }

  async function loadCooperations() {
    const { items: cooperations } = await apiAll('/api/cooperations?limit=100', 'cooperations');
    state.cooperations = cooperations;
    const unknown = [...new Set(cooperations.map((c) => c.host_id))].filter((id) => !state.hostNames.has(id));
    for (let i = 0; i < unknown.length; i += 100) {
      const { hosts } = await api('GET', `/api/hosts?ids=${unknown.slice(i, i + 100).join(',')}`);
      for (const host of hosts) state.hostNames.set(host.id, host.display_name);
    }
    renderCooperations();
  }

  const coopsPanel = h('section', { class: 'panel', id: 'cooperations' },
    h('h2', {}, 'Cooperations'),
    h('form', { class: 'form-grid', novalidate: true, onsubmit: propose, 'aria-label': 'new proposal' },
      field('Host', h('div', { class: 'row' }, hostSearch, hostSelect), { class: 'wide' }),
      h('fieldset', { class: 'wide' }, h('legend', {}, 'Products'), proposalProducts),
      field('Commission %', proposal.commission),
      field('Flat fee', proposal.fee),
      field('Fee currency', proposal.feeCurrency),
      field('Flash price floor (% of price)', proposal.flashFloor),
      field('Units per flash sale', proposal.flashCap),
      field('Beyond these: ask me', proposal.flashAsk),
      field('Note', proposal.note, { class: 'wide' }),
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Propose'))),
    coopStatus, coopNote,
    scrollBox('Cooperations', h('table', { class: 'cooperations' },
      h('thead', {}, h('tr', {}, ...['#', 'Host', 'Products', 'Commission', 'Flat fee', 'Flash sales', 'Status',
        'Since', ''].map((t) => h('th', {}, t)))),
      coopBody)));

  // -- sessions showing the brand's products -------------------------------------------

  const sessionsList = h('ul', { class: 'session-list' });
  const sessionsError = h('p', { class: 'form-error', role: 'alert' });

  function renderSessions() {
    sessionsList.replaceChildren(...(state.sessions.length ? state.sessions.map((s) => {
      if (s.host && s.host.display_name) state.hostNames.set(s.host.id, s.host.display_name);
      return h('li', { dataset: { sessionId: s.id } },
        h('span', { class: s.status === 'live' ? 'badge live' : 'badge' },
          s.status === 'live' ? 'LIVE' : 'scheduled'),
        h('a', { href: `/watch/${s.id}`, class: 'session-title' }, s.title),
        h('span', { class: 'muted' }, ` with ${s.host.display_name || hostName(s.host.id)}`),
        s.status === 'scheduled' && s.scheduled_at
          ? h('span', { class: 'muted' }, ` · ${when(s.scheduled_at)}`) : null,
        h('div', { class: 'muted small' }, `On the shelf: ${s.product_ids.map(productTitle).join(', ')}`));
    }) : [h('li', { class: 'muted' }, 'None of your products is on a live or scheduled shelf right now.')]));
  }

  // The brand follows the room of each live show that carries its products: stock
  // and flash-sale events there read the figures again (a brand's socket is not
  // counted as a viewer). Reads that come while one runs make one more, not one each.
  const rooms = new Map(); // session id -> RoomClient
  let figures = null; // the read in flight
  let figuresAgain = false;

  function figuresSoon() {
    if (figures) { figuresAgain = true; return; }
    figures = refreshFigures().catch(() => {}).finally(() => {
      figures = null;
      if (figuresAgain) { figuresAgain = false; figuresSoon(); }
    });
  }

  function followRooms() {
    const live = new Set(state.sessions.filter((s) => s.status === 'live').map((s) => s.id));
    for (const [id, room] of rooms) {
      if (!live.has(id)) { room.close(); rooms.delete(id); }
    }
    for (const id of live) {
      if (rooms.has(id)) continue;
      const room = new RoomClient(id, { token: session.token() });
      for (const type of STOCK_EVENTS) room.on(type, figuresSoon);
      rooms.set(id, room);
      room.connect();
    }
  }

  async function loadSessions() {
    try {
      const { items: sessions } = await apiAll(
        `/api/brands/${brand.id}/sessions?status=live,scheduled&limit=100`, 'sessions', { maxPages: 5 });
      state.sessions = sessions;
      sessionsError.textContent = '';
      renderSessions();
      followRooms();
    } catch (err) {
      sessionsError.textContent = errorMessage(err);
    }
  }

  const sessionsPanel = h('section', { class: 'panel', id: 'sessions' },
    h('h2', {}, 'On air now and coming up'), sessionsError, sessionsList);

  // -- sales and commission per host -------------------------------------------------

  const salesError = h('p', { class: 'form-error', role: 'alert', 'data-testid': 'sales-error' });
  const salesBody = h('tbody');
  const salesFoot = h('tfoot');
  const fromInput = h('input', { type: 'date', name: 'from', 'aria-label': 'from' });
  const toInput = h('input', { type: 'date', name: 'to', 'aria-label': 'to (inclusive)' });
  const MONEY_COLUMNS = ['gmv_minor', 'refunds_minor', 'host_commission_minor', 'platform_fees_minor',
    'brand_net_minor'];

  function salesQuery(format) {
    const params = new URLSearchParams({ format });
    if (fromInput.value) params.set('from', fromInput.value);
    if (toInput.value) {
      // The report's 'to' is exclusive; the box means "up to and including that day".
      const next = new Date(`${toInput.value}T00:00:00Z`);
      next.setUTCDate(next.getUTCDate() + 1);
      params.set('to', next.toISOString().slice(0, 10));
    }
    return `/api/brands/${brand.id}/sales?${params}`;
  }

  const moneyCells = (row) => MONEY_COLUMNS.map((key) =>
    h('td', { class: 'num', dataset: { col: key } }, money(row[key], row.currency)));

  function renderSales() {
    const { rows, totals } = state.sales;
    salesBody.replaceChildren(...(rows.length ? rows.map((r) => h('tr', {},
      h('td', {}, r.host_name || hostName(r.host_id)),
      h('td', {}, h('a', { href: `/watch/${r.session_id}` }, r.session_title || `#${r.session_id}`)),
      h('td', { class: 'num' }, String(r.orders)),
      h('td', { class: 'num' }, String(r.units)),
      ...moneyCells(r))) : [h('tr', {}, h('td', { colspan: 9, class: 'muted' }, 'No sales in this period.'))]));
    salesFoot.replaceChildren(...totals.map((t) => h('tr', { class: 'total', dataset: { currency: t.currency } },
      h('th', { colspan: 2 }, `Total ${t.currency}`),
      h('td', { class: 'num' }, String(t.orders)),
      h('td', { class: 'num' }, String(t.units)),
      ...moneyCells(t))));
  }

  async function loadSales() {
    try {
      state.sales = await api('GET', salesQuery('json'));
      salesError.textContent = '';
      renderSales();
    } catch (err) {
      salesError.textContent = errorMessage(err);
    }
  }

  async function downloadCsv() {
    salesError.textContent = '';
    try {
      // A plain link would not carry the bearer token: fetch, then save the text.
      const text = await api('GET', salesQuery('csv'));
      const url = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
      const link = h('a', { href: url, download: `sales-brand-${brand.id}.csv` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (err) {
      salesError.textContent = errorMessage(err);
    }
  }

  const salesPanel = h('section', { class: 'panel', id: 'sales' },
    h('h2', {}, 'Sales and commission per host'),
    h('div', { class: 'row' },
      field('From', fromInput), field('To', toInput),
      h('button', { type: 'button', class: 'secondary', onclick: loadSales }, 'Show'),
      h('button', { type: 'button', class: 'secondary', onclick: downloadCsv,
        'data-testid': 'sales-csv' }, 'Download CSV')),
    salesError,
    scrollBox('Sales per host', h('table', { class: 'sales' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Host'), h('th', {}, 'Session'),
        ...['Orders', 'Units', 'Sales', 'Refunds', 'Host commission', 'Platform fees', 'Your net']
          .map((t) => h('th', { class: 'num' }, t)))),
      salesBody, salesFoot)));

  // -- flash sales waiting for the brand ----------------------------------------------

  const approvalsBody = h('ul', { class: 'approvals', 'data-testid': 'flash-approvals' });
  const approvalsError = h('p', { class: 'form-error', role: 'alert' });
  const approvalsPanel = h('section', { class: 'panel', id: 'approvals', hidden: true },
    h('h2', {}, 'Flash sales waiting for you'),
    h('p', { class: 'muted note' }, 'Hosts asked for these sales outside the agreed terms. '
      + 'Nothing is sold until you approve.'),
    approvalsError, approvalsBody);
  const baseTitle = document.title;

  async function answer(sale, verb) {
    approvalsError.textContent = '';
    try {
      await api('POST', `/api/flash-sales/${sale.id}/${verb}`);
    } catch (err) {
      approvalsError.textContent = errorMessage(err);
    }
    await loadApprovals();
  }

  function approvalLine(sale) {
    const { product, terms } = sale;
    const over = [];
    if (terms.floor_minor !== null && sale.price_minor < terms.floor_minor) {
      over.push(`below your floor of ${money(terms.floor_minor, product.currency)}`);
    }
    if (terms.max_units !== null && sale.quantity > terms.max_units) {
      over.push(`over your cap of ${terms.max_units} units`);
    }
    const starts = new Date(sale.starts_ms).toLocaleTimeString();
    const ends = new Date(sale.ends_ms).toLocaleTimeString();
    return h('li', { dataset: { flashId: sale.id } },
      h('span', { class: 'grow' },
        `${sale.host.display_name} · ${sale.session.title}: ${product.title} at `
        + `${money(sale.price_minor, sale.currency)} (regular ${money(product.price_minor, product.currency)}), `
        + `${sale.quantity} units, ${starts}–${ends} — ${over.join(', ')}`),
      h('button', { type: 'button', onclick: () => answer(sale, 'approve') }, 'Approve'),
      h('button', { type: 'button', class: 'secondary', onclick: () => answer(sale, 'decline') }, 'Decline'));
  }

  async function loadApprovals() {
    try {
      const { flash_sales: waiting } = await api('GET', `/api/brands/${brand.id}/flash-approvals`);
      approvalsBody.replaceChildren(...waiting.map(approvalLine));
      approvalsPanel.hidden = waiting.length === 0;
      document.title = waiting.length ? `(${waiting.length}) ${baseTitle}` : baseTitle;
    } catch (err) {
      approvalsError.textContent = errorMessage(err);
    }
  }

  // -- putting it together -------------------------------------------------------------

  const consoleError = h('p', { class: 'form-error', role: 'alert' });
  let refreshing = false;

  async function refresh({ products = false } = {}) {
    if (refreshing) return;
    refreshing = true;
    try {
      // Products only on demand: a poll must not wipe a price someone is typing.
      if (products) await loadProducts();
      await loadCooperations();
      await Promise.all([loadSessions(), loadSales()]);
      consoleError.textContent = '';
    } catch (err) {
      consoleError.textContent = errorMessage(err);
    } finally {
      refreshing = false;
    }
  }

  root.replaceChildren(
    h('div', { class: 'row console-bar' },
      h('h2', { class: 'grow' }, `Brand console · ${brand.display_name || brand.username}`),
      h('button', { type: 'button', class: 'secondary', 'data-testid': 'refresh',
        onclick: () => refresh({ products: true }) }, 'Refresh')),
    consoleError, approvalsPanel, productsPanel, coopsPanel, sessionsPanel, salesPanel);
  renderProposalProducts();
  refresh({ products: true }).then(searchHosts);
  loadApprovals();
  const timer = setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
  const approvalsTimer = setInterval(() => { if (!document.hidden) loadApprovals(); }, APPROVALS_MS);
  return () => {
    clearInterval(timer);
    clearInterval(approvalsTimer);
    for (const room of rooms.values()) room.close();
    rooms.clear();
    document.title = baseTitle;
  };
}

// -- page ----------------------------------------------------------------------------

let unmount = () => {};

function render() {
  unmount();
  unmount = () => {};
  const root = $('#console');
  const user = session.user();
  $('#intro').hidden = Boolean(user && user.role === 'brand');
  if (!user) {
    root.replaceChildren();
  } else if (user.role !== 'brand') {
    root.replaceChildren(h('section', { class: 'panel notice' },
      h('p', {}, `You are signed in as a ${user.role}. The brand console is for brand accounts: `
        + 'sign out, then sign in or create a brand account.')));
  } else {
    unmount = mountConsole(root, user);
  }
}

mountAuth($('#auth'), { roles: ['brand'], prompt: 'Brand sign in' });
window.addEventListener('liveshelf:auth', render);
render();
