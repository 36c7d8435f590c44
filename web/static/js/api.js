/*
 * api.js - the page's only way to the recorder: logging in (HTTP Basic
 * once, to make an API token for the user, then "Authorization: Bearer"
 * on every request), the session kept in sessionStorage (gone with the
 * tab), JSON requests with the API's error objects turned into ApiError,
 * and downloads fetched with the token and saved through a blob URL
 * (a plain link could not carry the header).
 */
const KEY = 'nvr.session';
const TOKEN_LIFETIME_S = 12 * 3600;

export class ApiError extends Error {
  constructor(status, message, parameter, body) {
    super(message);
    this.status = status;
    this.parameter = parameter || '';
    this.body = body || null;
  }
}

let onUnauthorized = () => {};
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

export function session() {
  try { return JSON.parse(sessionStorage.getItem(KEY)); } catch { return null; }
}

function basic(name, password) {
  const bytes = new TextEncoder().encode(`${name}:${password}`);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return 'Basic ' + btoa(bin);
}

async function errorOf(res) {
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  const e = body && body.error ? body.error : {};
  return new ApiError(res.status, e.message || `HTTP ${res.status}`, e.parameter, body);
}

/* Logs in: a token for the user, then who they are. Resolves to the session. */
export async function login(name, password) {
  const res = await fetch('/api/v1/tokens', {
    method: 'POST',
    headers: { Authorization: basic(name, password), 'Content-Type': 'application/json' },
    body: JSON.stringify({ label: 'web interface', expires_in_s: TOKEN_LIFETIME_S }),
  });
  if (!res.ok) throw await errorOf(res);
  const tok = await res.json();
  const me = await fetch('/api/v1/me', { headers: { Authorization: `Bearer ${tok.token}` } });
  if (!me.ok) throw await errorOf(me);
  const who = await me.json();
  const s = { token: tok.token, tokenId: tok.id, user: who.user, role: who.role };
  sessionStorage.setItem(KEY, JSON.stringify(s));
  return s;
}

/* Revokes the token (best effort) and forgets the session. */
export async function logout() {
  const s = session();
  sessionStorage.removeItem(KEY);
  if (s) {
    try {
      await fetch(`/api/v1/tokens/${encodeURIComponent(s.tokenId)}`,
                  { method: 'DELETE', headers: { Authorization: `Bearer ${s.token}` } });
    } catch { /* the server is gone: the token expires by itself */ }
  }
}

export function authHeaders(extra = {}) {
  const s = session();
  return s ? { ...extra, Authorization: `Bearer ${s.token}` } : extra;
}

/* A raw response (for streams); throws ApiError unless 2xx. */
export async function apiFetch(path, opts = {}) {
  const res = await fetch(path, { ...opts, headers: authHeaders(opts.headers) });
  if (res.status === 401) onUnauthorized();
  if (!res.ok) throw await errorOf(res);
  return res;
}

/* GET (or opts.method with opts.json as the body) of a JSON answer. */
export async function api(path, opts = {}) {
  const init = { method: opts.method || 'GET', headers: {} };
  if (opts.json !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(opts.json);
  }
  const res = await apiFetch(path, init);
  return res.json();
}

/* Fetches path with the token and hands it to the browser as a file. */
export async function download(path, filename) {
  const res = await apiFetch(path);
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
  return blob.size;
}

/* Query string of the defined entries of obj. */
export function qs(obj) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(obj))
    if (v !== undefined && v !== null && v !== '') p.append(k, String(v));
  return p.toString();
}
