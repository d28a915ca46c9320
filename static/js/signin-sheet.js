// The sign-in sheet: a modal <dialog> (a bottom sheet on a phone) that asks a guest to
// sign in, or to create a viewer account, when they tap something that needs one, and
// then carries on with what they asked for: a guest taps Buy, signs in, and the order
// is placed without a second tap. Its form is built each time it opens and removed when
// it closes, so the page holds one sign-in form at a time.
//
//   const sheet = new SignInSheet();
//   sheet.require('to buy', () => buy(item));   // now when signed in, else after sign-in
//   sheet.open();                                // just sign in

import { session, signIn, signUp } from './api.js';
import { h } from './format.js';
import { errorMessage } from './messages.js';

/** Where signing in differs from the general sentences (messages.js). */
const SIGN_IN_ERRORS = {
  invalid_credentials: 'That username and password don’t match. Check them and try again.',
  username_taken: 'That username is taken. Pick another one, or sign in if it is yours.',
  invalid_input: 'Usernames are 3 to 32 lowercase letters, digits, dots, dashes or '
    + 'underscores; new passwords need at least 10 characters and must not be a common one.',
};

/** What the person reads when signing in or up was refused. */
export function signInError(err) {
  return SIGN_IN_ERRORS[err.code]
    || errorMessage(err, { labels: { username: 'Username', password: 'Password' } });
}

export class SignInSheet {
  constructor(parent = document.body) {
    this.dialog = h('dialog', { class: 'signin-sheet', 'aria-labelledby': 'signin-heading',
      'data-testid': 'signin-sheet' });
    parent.append(this.dialog);
    this.next = null;
    this.opener = null;
    this.dialog.addEventListener('close', () => this.closed());
    // A tap on the backdrop (the dialog itself, outside its content) closes it.
    this.dialog.addEventListener('click', (ev) => { if (ev.target === this.dialog) this.dialog.close(); });
  }

  /** Runs `action` now when signed in; otherwise opens the sheet ("Sign in `why`")
   * and runs `action` as soon as the person has signed in. */
  require(why, action) {
    if (session.user()) return action();
    this.open(why, action);
    return null;
  }

  get isOpen() { return this.dialog.open; }

  open(why = '', action = null) {
    this.next = action;
    this.opener = document.activeElement;
    this.dialog.replaceChildren(this.content(why));
    if (!this.dialog.open) this.dialog.showModal();
    this.dialog.querySelector('input').focus();
  }

  close() {
    if (this.dialog.open) this.dialog.close();
  }

  closed() {
    this.dialog.replaceChildren();
    this.next = null;
    if (this.opener && this.opener.isConnected && !this.opener.disabled) this.opener.focus();
    this.opener = null;
  }

  /** Signed in: close, then do what the person asked for. */
  done() {
    const next = this.next;
    this.next = null;
    this.close();
    if (next) next();
  }

  content(why) {
    const message = h('p', { class: 'form-error', role: 'alert', 'data-testid': 'signin-error' });
    const username = h('input', { name: 'username', autocomplete: 'username', required: true,
      autocapitalize: 'none', spellcheck: 'false' });
    const password = h('input', { name: 'password', type: 'password', required: true,
      autocomplete: 'current-password' });
    const buttons = [];
    const submit = (create) => async (ev) => {
      ev.preventDefault();
      if (!username.value || !password.value) {
        message.textContent = 'Enter your username and password.';
        (username.value ? password : username).focus();
        return;
      }
      message.textContent = '';
      buttons.forEach((b) => { b.disabled = true; });
      try {
        if (create) await signUp(username.value.trim(), password.value, 'viewer');
        else await signIn(username.value.trim(), password.value);
      } catch (err) {
        message.textContent = signInError(err);
        buttons.forEach((b) => { b.disabled = false; });
        return;
      }
      this.done();
    };
    const signInButton = h('button', { type: 'submit' }, 'Sign in');
    const create = h('button', { type: 'button', class: 'secondary', onclick: submit(true) },
      'Create account');
    const cancel = h('button', { type: 'button', class: 'link', onclick: () => this.close() }, 'Not now');
    buttons.push(signInButton, create);
    return h('form', { class: 'signin-form', onsubmit: submit(false), novalidate: true },
      h('h2', { id: 'signin-heading' }, why ? `Sign in ${why}` : 'Sign in'),
      h('p', { class: 'muted' }, why
        ? 'It takes a moment, and we carry on right after: no need to tap again.'
        : 'Sign in to chat, follow hosts and buy.'),
      h('label', { class: 'field' }, h('span', {}, 'Username'), username),
      h('label', { class: 'field' }, h('span', {}, 'Password'), password),
      message,
      h('div', { class: 'sheet-actions' }, signInButton, create, cancel),
      h('p', { class: 'muted small' }, 'New here? Choose a username and a password, then '
        + 'tap Create account.'));
  }
}
