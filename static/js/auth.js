// A sign-in / sign-up box shared by the pages. Shows who is signed in, and a form
// otherwise; `roles` limits what a sign-up may create on this page.

import { session, signIn, signOut, signUp } from './api.js';
import { h } from './format.js';
import { errorMessage } from './messages.js';

export function mountAuth(root, { roles = ['viewer'], prompt = 'Sign in' } = {}) {
  function render() {
    const user = session.user();
    root.replaceChildren();
    if (user) {
      root.append(h('div', { class: 'auth-user' },
        h('span', { class: 'muted' }, 'Signed in as '),
        h('strong', { 'data-testid': 'signed-in-as' }, user.display_name || user.username),
        h('span', { class: 'muted' }, ` (${user.role}) `),
        h('button', { class: 'link', type: 'button', onclick: () => signOut() }, 'Sign out')));
      return;
    }
    const message = h('p', { class: 'form-error', role: 'alert' });
    const username = h('input', { name: 'username', autocomplete: 'username', required: true,
      placeholder: 'username', 'aria-label': 'username' });
    const password = h('input', { name: 'password', type: 'password', required: true,
      autocomplete: 'current-password', placeholder: 'password', 'aria-label': 'password' });
    const role = h('select', { name: 'role', 'aria-label': 'role' },
      roles.map((r) => h('option', { value: r }, r)));
    const submit = (create) => async (ev) => {
      ev.preventDefault();
      message.textContent = '';
      try {
        if (create) await signUp(username.value, password.value, role.value);
        else await signIn(username.value, password.value);
      } catch (err) {
        message.textContent = errorMessage(err);
      }
    };
    root.append(h('form', { class: 'auth-form', onsubmit: submit(false) },
      h('strong', {}, prompt),
      username, password,
      h('button', { type: 'submit' }, 'Sign in'),
      h('span', { class: 'muted' }, 'or'),
      roles.length > 1 ? role : null,
      h('button', { type: 'button', class: 'secondary', onclick: submit(true) }, 'Create account'),
      message));
  }
  window.addEventListener('liveshelf:auth', render);
  render();
}
