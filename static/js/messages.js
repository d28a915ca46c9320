// What people read when something they did is refused, on every page: one sentence in
// their terms per error code of the API (shelf/API.md, chat/API.md; the codes in the
// API's answers stay as they are, only what is shown changes). Money is shown in its
// currency, fields by the label they have on the page, never a raw code or the
// server's developer text. Also buying from a page (the watch page and the replay):
// placing an order with its Idempotency-Key and the toast that says how it went.
//
//   errorMessage(err, { labels, currency, product })  -> 'Password must be at least …'
//
// `labels` names the page's fields by the API's names ({ price_minor: 'Price' }) where
// they differ from FIELD_LABELS; `currency` is the currency of the money fields;
// `product` ({ price_minor, currency }) is the product an action was about.

import { ApiError, api, idempotencyKey, session } from './api.js';
import { $, money } from './format.js';

/** The API's field names as the pages label them (a page may pass its own). */
export const FIELD_LABELS = {
  username: 'Username',
  password: 'Password',
  role: 'Account type',
  display_name: 'Display name',
  title: 'Title',
  description: 'Description',
  scheduled_at: 'Start time',
  price_minor: 'Price',
  currency: 'Currency',
  stock: 'Stock',
  commission_bps: 'Commission',
  image_url: 'Image URL',
  host_id: 'Host',
  product_id: 'Product',
  product_ids: 'Products',
  flat_fee_minor: 'Flat fee',
  flat_fee_currency: 'Fee currency',
  note: 'Note',
  flash_min_price_bps: 'Flash price floor',
  flash_max_units: 'Units per flash sale',
  flash_ask_brand: 'Ask me beyond these terms',
  quantity: 'Quantity',
  per_buyer_limit: 'Limit per buyer',
  starts_at: 'Start',
  ends_at: 'End',
  text: 'Message',
  keywords: 'Blocked words',
  seconds: 'Duration',
  agency_id: 'Agency',
};

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** Money from the error's details or the context: `'$39.00'`, or null if unknown. */
function amount(minor, currency) {
  if (!Number.isFinite(Number(minor)) || !currency) return null;
  try { return money(Number(minor), currency); } catch { return null; }
}

/** Seconds to wait, from a refusal's `retry_after_ms`, as words ('' when none). */
function waitWords(err) {
  const ms = err.details && err.details.retry_after_ms;
  return ms > 0 ? ` Try again in ${plural(Math.ceil(ms / 1000), 'second')}.` : ' Try again in a moment.';
}

const noLongerThere = "That doesn't exist (any more).";
const signedOut = 'You were signed out; sign in again.';
const tooMany = (err) => `Too many tries in a short time.${waitWords(err)}`;

/** Sentences by error code; a function gets (err, context). */
const ERRORS = {
  // accounts
  username_taken: 'That username is taken; choose another one.',
  invalid_credentials: 'The username or password is wrong.',
  account_disabled: 'This account is disabled.',
  sign_in_required: 'Sign in first.',
  token_expired: signedOut,
  token_revoked: signedOut,
  invalid_token: signedOut,
  role_not_allowed: 'Your kind of account cannot do that here.',
  // whose it is
  not_you: 'You can only change your own account.',
  not_your_session: "Only the show's host can do that.",
  not_your_product: 'That product belongs to another brand.',
  not_your_cooperation: 'That agreement is between other accounts.',
  not_your_brand: "You can only see your own brand's figures.",
  not_your_host: 'That host has not named you as their agency.',
  not_your_card: "You can only publish your own rate card.",
  not_your_order: 'That order is not yours.',
  not_your_report: 'You can only see your own report.',
  not_on_this_shelf: "None of your products is on this show's shelf, so its stats are not yours to see.",
  // the market (market/API.md)
  notes_unavailable: 'Notes cannot be offered yet; offer a live segment or a shelf slot.',
  minutes_required: 'A live segment needs its minutes.',
  minutes_not_allowed: 'Only a live segment has minutes.',
  stale_version: 'Your rate card changed meanwhile (another device or your agency). Reload and try again.',
  rate_card_busy: 'Your rate card was being published at the same moment. Try again.',
  rate_card_not_found: 'No rate card is published yet.',
  creator_not_found: 'That host is not in the creator directory.',
  currency_required: 'Choose a currency to filter or sort by price or GMV.',
  // what is not there
  session_not_found: "This show doesn't exist.",
  product_not_found: "That product doesn't exist.",
  host_not_found: "That host doesn't exist.",
  user_not_found: "That account doesn't exist.",
  agency_not_found: "That agency doesn't exist.",
  cooperation_not_found: "That agreement doesn't exist.",
  flash_sale_not_found: "That flash sale doesn't exist.",
  order_not_found: "That order doesn't exist.",
  pin_not_found: 'Nothing is pinned right now.',
  no_recording: 'This show has no recording.',
  not_found: noLongerThere,
  // the shelf and agreements
  already_on_shelf: 'That product is already on the shelf.',
  shelf_full: 'The shelf is full: it holds at most 100 products.',
  no_cooperation: 'There is no accepted agreement with the brand for that product.',
  not_on_shelf: 'Put the product on the shelf first.',
  not_a_permutation: 'The shelf changed meanwhile; reload and try again.',
  product_archived: 'That product is archived and can no longer be sold or proposed.',
  already_cooperating: (err) => {
    const n = (err.details && err.details.product_ids || []).length;
    return n > 1
      ? `An accepted agreement with this host already covers ${n} of these products.`
      : 'An accepted agreement with this host already covers that product.';
  },
  illegal_transition: (err) => (err.details && err.details.status
    ? `That can no longer be done: it is already ${err.details.status}.`
    : 'That can no longer be done.'),
  not_your_turn: (err) => (err.details && err.details.turn
    ? `It is the ${err.details.turn}'s turn to answer this offer.`
    : 'It is the other side\'s turn to answer this offer.'),
  stale_round: 'The terms changed meanwhile (a new counter-offer); read them again before you answer.',
  terms_unchanged: 'A counter-offer changes the commission or the flat fee.',
  fee_needs_currency: 'A flat fee needs its currency, such as EUR.',
  session_ended: 'The show has ended.',
  scheduled_in_past: 'Pick a start time in the future.',
  session_started: 'The show has started, so its title and time can no longer be changed.',
  session_not_live: 'The show is not live right now.',
  // flash sales
  flash_price_not_lower: (err, ctx) => {
    const d = err.details || {};
    const product = ctx.product || {};
    const regular = amount(d.regular_price_minor ?? product.price_minor,
      d.currency || product.currency || ctx.currency);
    return regular
      ? `The flash price must be below the regular price, ${regular}.`
      : 'The flash price must be below the regular price.';
  },
  flash_price_below_floor: (err, ctx) => {
    const d = err.details || {};
    const floor = amount(d.floor_minor, d.currency || (ctx.product || {}).currency || ctx.currency);
    return floor
      ? `The brand agreed to flash prices of ${floor} or more for this product.`
      : 'The flash price is below what the brand agreed to.';
  },
  flash_quantity_over_cap: (err) => (err.details && err.details.max_units
    ? `The brand agreed to at most ${plural(err.details.max_units, 'unit')} per flash sale.`
    : 'That is more units than the brand agreed to per flash sale.'),
  flash_not_agreed: "The brand's agreement for this product allows no flash sales.",
  insufficient_stock: (err) => (err.details && Number.isInteger(err.details.available)
    ? `Only ${plural(err.details.available, 'unit')} left in stock.`
    : 'There are not that many units in stock.'),
  flash_sale_overlaps: 'Another flash sale of this product overlaps that time; choose another time.',
  too_many_flash_sales_planned: (err) => (err.details && err.details.max_planned
    ? `This show already has ${err.details.max_planned} flash sales planned; cancel one first.`
    : 'This show already has as many flash sales planned as it can.'),
  invalid_window: 'The end must be after the start.',
  window_in_past: 'That time has already passed.',
  window_too_long: 'A flash sale lasts at most 24 hours.',
  window_too_far: 'A flash sale starts at most 30 days ahead.',
  flash_sale_expired: 'Its time has passed; it can no longer be approved.',
  flash_sale_not_pending: 'That flash sale was already answered or withdrawn.',
  flash_sale_not_scheduled: 'Only a scheduled flash sale can be cancelled.',
  // buying
  out_of_stock: 'Sold out, sorry.',
  flash_sold_out: 'The flash sale just sold out.',
  flash_limit_reached: 'You reached the per-person limit of this flash sale.',
  replay_not_available: 'Replay orders open when the show has ended.',
  payment_declined: 'Your payment was declined; nothing was charged.',
  payment_unavailable: 'Payments are not answering right now; nothing was charged. Try again shortly.',
  not_refundable: 'That order cannot be refunded (any more).',
  invalid_quantity: 'Choose a quantity from 1 to 99.',
  price_changed: (err) => {
    const now = amount(err.details && err.details.unit_price_minor, err.details && err.details.currency);
    return now
      ? `The price is now ${now}; nothing was charged. Check it and try again.`
      : 'The price changed; nothing was charged. Check it and try again.';
  },
  // the room and chat
  banned: 'You cannot take part in this room.',
  muted: 'You are muted for now.',
  blocked_word: 'That message contains a blocked word.',
  slow_mode: (err) => `Slow mode is on.${waitWords(err)}`,
  chat_rate_limited: (err) => `You are sending too fast.${waitWords(err)}`,
  empty_message: 'Nothing to send: type a message first.',
  message_too_long: 'Messages are at most 300 characters.',
  message_too_large: 'That message is too long.',
  message_not_found: 'That message is gone.',
  target_is_staff: "The host and moderators can't be muted or banned.",
  not_a_moderator: 'That person is not a moderator.',
  host_is_not_a_moderator: 'The host moderates anyway.',
  not_muted: 'That person is not muted.',
  not_banned: 'That person is not banned.',
  mute_too_long: 'A mute lasts at most a day.',
  slow_mode_too_long: 'Slow mode waits at most 5 minutes between messages.',
  too_many_keywords: 'That is too many blocked words.',
  // going live
  publisher_exists: 'The show is already being streamed from another window or device.',
  no_publisher: 'The show is not streaming yet.',
  too_many_peers: 'Too many people are watching on this server right now; try again shortly.',
  // limits and the service
  rate_limited: tooMany,
  room_busy: tooMany,
  like_rate_limited: tooMany,
  too_many_likes: tooMany,
  too_many_sockets: 'Too many open windows on this show; close one and try again.',
  body_too_large: 'That is too much to send at once.',
  network_error: 'The server cannot be reached. Check your connection.',
  internal_error: 'Something went wrong on our side; try again in a moment.',
};

/** What is wrong with a field, in words, from the server's problem text. */
function problemWords(field, problem, ctx) {
  const number = (text) => {
    const n = Number(text);
    if (field.endsWith('_minor')) return amount(n, ctx.currency) || n.toLocaleString();
    if (field.endsWith('_bps')) return `${(n / 100).toLocaleString()} %`;
    return n.toLocaleString();
  };
  let m;
  if (/^Field required/.test(problem)) return 'is required';
  if ((m = /^String should have at least (\d+) characters?/.exec(problem))) {
    return Number(m[1]) === 1 ? 'is required' : `must be at least ${m[1]} characters long`;
  }
  if ((m = /^String should have at most (\d+) characters?/.exec(problem))) {
    return `can be at most ${m[1]} characters long`;
  }
  if ((m = /^Input should be (greater than or equal to|less than or equal to|greater than|less than) (-?[\d.e+]+)/.exec(problem))) {
    const words = { 'greater than or equal to': 'must be at least', 'less than or equal to': 'can be at most',
      'greater than': 'must be more than', 'less than': 'must be less than' }[m[1]];
    return `${words} ${number(m[2])}`;
  }
  if ((m = /^List should have at least (\d+) items?/.exec(problem))) {
    return Number(m[1]) === 1 ? 'needs at least one choice' : `needs at least ${m[1]} choices`;
  }
  if ((m = /^List should have at most (\d+) items?/.exec(problem))) return `can have at most ${m[1]}`;
  if (/^Input should be a valid integer/.test(problem)) return 'must be a whole number';
  if (/^Input should be a valid number/.test(problem)) return 'must be a number';
  if (/^String should match pattern/.test(problem)) return 'contains characters that are not allowed';
  const custom = problem.replace(/^Value error, /, '');
  const rules = [
    [/^(password: )?the password must be at least (\d+) characters/, (x) => `must be at least ${x[2]} characters long`],
    [/most common/, () => 'is one of the most common passwords; choose another one'],
    [/must not contain the username/, () => 'must not contain the username'],
    [/http\(s\) URL/, () => 'must be a web address starting with https://'],
    [/ISO 4217/, () => 'must be a currency code such as EUR or USD'],
    [/NUL character|control, direction or zero-width/, () => 'contains characters that cannot be stored; remove them'],
    [/must not be empty/, () => 'is required'],
    [/give a timezone|between 1970 and 9999|valid datetime/, () => 'is not a valid date and time'],
    [/role in brackets/, () => 'must not contain a role in brackets; the room shows it by itself'],
    [/flat_fee_minor and flat_fee_currency go together/, () => 'and Fee currency go together: give both or neither'],
    [/per_buyer_limit cannot exceed quantity/, () => 'cannot be more than the quantity'],
    [/flash_ask_brand needs/, () => 'needs a flash price floor'],
  ];
  for (const [pattern, words] of rules) {
    const hit = pattern.exec(custom);
    if (hit) return words(hit);
  }
  return 'is not valid';
}

/** The field a problem is about: from its path, or a model-level message naming one. */
function fieldOf(entry) {
  const path = String(entry.field || '');
  if (path) return path.split('.')[0];
  const named = /^Value error, ([a-z_]+)(:| and | cannot| needs)/.exec(entry.problem || '');
  return named ? named[1] : '';
}

function invalidInput(err, ctx) {
  const fields = (err.details && err.details.fields) || [];
  if (!fields.length) return 'Something you entered is not valid; check the form and try again.';
  const labels = { ...FIELD_LABELS, ...(ctx.labels || {}) };
  const sentences = fields.slice(0, 3).map((entry) => {
    const field = fieldOf(entry);
    const label = labels[field] || 'A field';
    return `${label} ${problemWords(field, entry.problem || '', ctx)}.`;
  });
  return [...new Set(sentences)].join(' ');
}

function byStatus(err) {
  const { status } = err;
  if (status === 0) return ERRORS.network_error;
  if (status === 401) return signedOut;
  if (status === 403) return 'You are not allowed to do that.';
  if (status === 404) return noLongerThere;
  if (status === 409) return 'That is no longer possible: something changed meanwhile. Reload and try again.';
  if (status === 429) return tooMany(err);
  if (status === 503) return `The service is busy for a moment.${waitWords(err)}`;
  if (status >= 500) return ERRORS.internal_error;
  return 'That did not work; check what you entered and try again.';
}

/** The sentence for an error: an API refusal (ApiError) by its code, in the page's
 * terms (`context`: { labels, currency, product }); any other error's own message
 * (the pages' own checks already speak to people). */
export function errorMessage(err, context = {}) {
  if (!(err instanceof ApiError) && !(err && typeof err.code === 'string' && 'status' in err)) {
    return err && err.message ? err.message : String(err);
  }
  if (err.code === 'invalid_input') return invalidInput(err, context);
  if (/_unavailable$/.test(err.code) && err.code !== 'payment_unavailable'
      && err.code !== 'replay_not_available' && err.code !== 'notes_unavailable') {
    return byStatus({ ...err, status: 503, details: err.details });
  }
  const sentence = ERRORS[err.code];
  if (typeof sentence === 'function') return sentence(err, context);
  if (sentence) return sentence;
  if (/^too_many_/.test(err.code)) return tooMany(err);
  return byStatus(err);
}

// -- buying --------------------------------------------------------------------------

/** What a buyer reads where it differs from the general sentence. */
const BUY_ERRORS = {
  sign_in_required: 'Sign in to buy.',
  role_not_allowed: 'Sign in with a viewer account to buy.',
  not_on_shelf: 'This product is no longer on the shelf.',
  product_archived: 'This product is no longer sold.',
  banned: 'You cannot buy in this room.',
  token_expired: 'You were signed out; sign in again to buy.',
  invalid_token: 'You were signed out; sign in again to buy.',
  token_revoked: 'You were signed out; sign in again to buy.',
};

/** Whether an error leaves it open if the order was placed (retry with the same key). */
const uncertain = (err) => err.code === 'network_error' || err.status >= 500
  || err.code === 'order_in_progress';

/** The message for a refused order. */
function buyError(err) {
  if (uncertain(err)) {
    return 'We could not confirm your order yet. Tap Buy again: the same order is '
      + 'completed, never charged twice.';
  }
  if (err.code === 'price_changed' && err.details) {
    const now = money(err.details.unit_price_minor, err.details.currency);
    return `The price is now ${now}; nothing was charged. Check it and tap Buy again.`;
  }
  return BUY_ERRORS[err.code] || errorMessage(err, { labels: { quantity: 'Quantity' } });
}

/** A toast in `el`: `toast(text, 'ok' | 'error')`; errors stay a little longer. */
export function toaster(el) {
  let timer = null;
  return (text, kind = 'ok') => {
    el.textContent = text;
    el.className = `toast ${kind}`;
    el.hidden = false;
    clearTimeout(timer);
    timer = setTimeout(() => { el.hidden = true; }, kind === 'error' ? 6000 : 5000);
  };
}

/** Purchases without a definite answer yet (a network error, a 5xx, or still being
 * placed), by what was bought: tapping Buy again for the same purchase reuses its
 * Idempotency-Key, so however the first attempt ended the buyer is charged once. */
const unsettled = new Map();
const RETRY_DELAYS_MS = [500, 1000, 2000, 4000];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Places an order at `path` (`/orders` live, `/replay-orders` from a replay) and tells
 * the buyer how it went; resolves to the order, or null when refused. Until it gets a
 * definite answer (the order, or a refusal that says nothing was placed) it keeps the
 * same Idempotency-Key: it retries a network error, a 5xx or `order_in_progress` a few
 * times (0.5, 1, 2, 4 s apart), and a later tap on the same purchase reuses the key, so
 * an attempt that got through is answered with its order instead of a second one. The
 * key is never shown. `seen` is the unit price the buyer was shown ({ unit_price_minor,
 * currency }): at another price the server refuses the order (price_changed) and
 * charges nothing.
 */
export async function placeOrder(path, productId, title, quantity, toast, seen) {
  if (!session.user()) {
    toast('Sign in to buy (top right).', 'error');
    $('#auth input')?.focus();
    return null;
  }
  if (!Number.isInteger(quantity) || quantity < 1 || quantity > 99) {
    toast('Choose a quantity from 1 to 99.', 'error');
    return null;
  }
  const body = { product_id: productId, quantity };
  if (seen) {
    body.expected_unit_price_minor = seen.unit_price_minor;
    body.currency = seen.currency;
  }
  const purchase = JSON.stringify([session.user().id, path, body]);
  const key = unsettled.get(purchase) ?? idempotencyKey();
  unsettled.set(purchase, key);
  const headers = { 'Idempotency-Key': key };
  try {
    let order;
    for (let attempt = 0; ; attempt += 1) {
      try {
        order = await api('POST', path, body, { headers });
        break;
      } catch (err) {
        if (!uncertain(err) || attempt >= RETRY_DELAYS_MS.length) throw err;
        await sleep(RETRY_DELAYS_MS[attempt]);
      }
    }
    unsettled.delete(purchase);
    toast(`Order #${order.id} confirmed: ${order.quantity} × ${title}, `
      + `${money(order.amount_minor, order.currency)} paid.`);
    return order;
  } catch (err) {
    if (!uncertain(err)) unsettled.delete(purchase); // refused: nothing was placed
    toast(buyError(err), 'error');
    return null;
  }
}
