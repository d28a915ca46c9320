// Buying from a page (the watch page and the replay): placing an order with its
// Idempotency-Key, what the buyer reads when it is refused (keyed by the API's error
// codes, shelf/API.md), and the toast that says so.

import { api, idempotencyKey, session } from './api.js';
import { $, money } from './format.js';

const BUY_ERRORS = {
  out_of_stock: 'Sold out, sorry.',
  flash_sold_out: 'The flash sale just sold out.',
  flash_limit_reached: 'You reached the per-person limit of this flash sale.',
  sign_in_required: 'Sign in to buy.',
  role_not_allowed: 'Sign in with a viewer account to buy.',
  session_not_live: 'The show is not live right now.',
  replay_not_available: 'Replay orders open when the show has ended.',
  not_on_shelf: 'This product is no longer on the shelf.',
  product_archived: 'This product is no longer sold.',
  payment_declined: 'Your payment was declined; nothing was charged.',
  banned: 'You cannot buy in this room.',
  token_expired: 'You were signed out; sign in again to buy.',
  invalid_token: 'You were signed out; sign in again to buy.',
};

/** Whether an error leaves it open if the order was placed (retry with the same key). */
const uncertain = (err) => err.code === 'network_error' || err.status >= 500
  || err.code === 'order_in_progress';

/** The message for a refused order (the server's own message when it has no entry). */
function buyError(err) {
  if (uncertain(err)) {
    return 'We could not confirm your order yet. Tap Buy again: the same order is '
      + 'completed, never charged twice.';
  }
  if (err.code === 'price_changed' && err.details) {
    const now = money(err.details.unit_price_minor, err.details.currency);
    return `The price is now ${now}; nothing was charged. Check it and tap Buy again.`;
  }
  return BUY_ERRORS[err.code] || err.message;
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
