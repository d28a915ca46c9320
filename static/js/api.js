// The HTTP API from the browser: bearer token kept in localStorage, JSON in and out,
// errors thrown as ApiError carrying the server's machine-readable code.

const TOKEN_KEY = 'liveshelf.token';
const USER_KEY = 'liveshelf.user';

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export const session = {
  token() { return localStorage.getItem(TOKEN_KEY); },
  user() {
    const raw = localStorage.getItem(USER_KEY);
    return raw ? JSON.parse(raw) : null;
  },
  save({ token, user }) {
    localStorage.setItem(TOKEN_KEY, token);
    localStorage.setItem(USER_KEY, JSON.stringify(user));
    window.dispatchEvent(new CustomEvent('liveshelf:auth', { detail: user }));
  },
  clear() {
    localStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(USER_KEY);
    window.dispatchEvent(new CustomEvent('liveshelf:auth', { detail: null }));
  },
};

/** The Authorization header for a token; none without one. */
export const bearer = (t) => (t ? { Authorization: `Bearer ${t}` } : {});

export function authHeaders() {
  return bearer(session.token());
}


/** Calls the API; resolves to the parsed body (or text), rejects with ApiError. */
export async function api(method, path, body, { headers = {} } = {}) {
  const init = { method, headers: { ...authHeaders(), ...headers } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, 'network_error', 'The server cannot be reached. Check your connection.');
  }
  const type = res.headers.get('Content-Type') || '';
  const data = type.includes('application/json') ? await res.json() : await res.text();
  if (!res.ok) {
    const error = (data && data.error) || {};
    if (res.status === 401 && session.token()) session.clear();
    throw new ApiError(res.status, error.code || `http_${res.status}`,
      error.message || `Request failed (${res.status})`, error.details);
  }
  return data;
}

/** Every item of a paged list (``live/paging.py``): GETs `path` (which may carry
 * `limit` and filters), then the next pages through the answer's `next_before_id` or
 * `next_after_id` until it is null, at most `maxPages` pages. Resolves to
 * `{ items, complete }` (`complete` false: stopped at `maxPages`). */
export async function apiAll(path, key, { maxPages = 100 } = {}) {
  const items = [];
  let url = path;
  for (let n = 0; n < maxPages; n += 1) {
    const page = await api('GET', url);
    items.push(...page[key]);
    const cursor = 'next_after_id' in page ? 'after_id' : 'before_id';
    const next = page[`next_${cursor}`];
    if (next === null || next === undefined) return { items, complete: true };
    const query = new URLSearchParams(path.split('?')[1] || '');
    query.set(cursor, String(next));
    url = `${path.split('?')[0]}?${query}`;
  }
  return { items, complete: false };
}

export const signIn = async (username, password) =>
  session.save(await api('POST', '/api/auth/login', { username, password }));

/** Signs out here and revokes the account's tokens on the server (every device). */
export async function signOut() {
  try { await api('POST', '/api/auth/logout'); } catch { /* gone or offline: sign out here anyway */ }
  session.clear();
}

export const signUp = async (username, password, role) =>
  session.save(await api('POST', '/api/auth/signup', { username, password, role }));

/** A fresh idempotency key for one purchase attempt. */
export const idempotencyKey = () =>
  (crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`);
