// What a buyer reads when an order is refused: one place for the watch page and the
// replay, keyed by the API's error codes (shelf/API.md).

export const BUY_ERRORS = {
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
export const buyError = (err) => BUY_ERRORS[err.code] || err.message;

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
