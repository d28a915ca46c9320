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
  network_error: 'No connection; your order was not placed. Try again.',
  token_expired: 'You were signed out; sign in again to buy.',
  invalid_token: 'You were signed out; sign in again to buy.',
};

/** The message for a refused order (the server's own message when it has no entry). */
function buyError(err) {
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

/**
 * Places an order at `path` (`/orders` live, `/replay-orders` from a replay) and tells
 * the buyer how it went; resolves to the order, or null when refused. A network error
 * is retried once with the same Idempotency-Key: if the first attempt got through,
 * the server answers with that order instead of placing a second one. `seen` is the
 * unit price the buyer was shown ({ unit_price_minor, currency }): at another price the
 * server refuses the order (price_changed) and charges nothing.
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
  const headers = { 'Idempotency-Key': idempotencyKey() };
  try {
    let order;
    try {
      order = await api('POST', path, body, { headers });
    } catch (err) {
      if (err.code !== 'network_error') throw err;
      await new Promise((r) => setTimeout(r, 1000));
      order = await api('POST', path, body, { headers });
    }
    toast(`Order #${order.id} confirmed: ${order.quantity} × ${title}, `
      + `${money(order.amount_minor, order.currency)} paid.`);
    return order;
  } catch (err) {
    toast(buyError(err), 'error');
    return null;
  }
}
