/*
 * app.js - the page's entry point: the login form, the session, which
 * views and controls the user's role may see (elements with data-roles are
 * removed for other roles, so they are absent rather than hidden), the
 * tabs, the health badge, and logging out.
 */
import { ApiError, api, login, logout, session, setUnauthorizedHandler } from './api.js';
import { InvestigateView } from './investigate.js';
import { OperateView } from './operate.js';

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 10000;

function showLogin(message = '') {
  $('app').hidden = true;
  $('login-view').hidden = false;
  $('login-error').textContent = message;
  $('login-user').focus();
}

async function onLogin(e) {
  e.preventDefault();
  $('login-submit').disabled = true;
  try {
    await login($('login-user').value.trim(), $('login-pass').value);
    location.reload();
  } catch (err) {
    const msg = err instanceof ApiError && err.status === 401 ? 'Wrong user name or password.' : `Login failed: ${err.message}`;
    showLogin(msg);
  } finally {
    $('login-submit').disabled = false;
  }
}

/* Removes what the role may not use. */
function applyRole(role) {
  document.querySelectorAll('[data-roles]').forEach((n) => {
    if (!n.dataset.roles.split(' ').includes(role)) n.remove();
  });
}

function selectTab(view) {
  document.querySelectorAll('#tabs [role=tab]').forEach((t) => t.setAttribute('aria-selected', String(t.dataset.view === view)));
  document.querySelectorAll('.view').forEach((v) => { v.hidden = v.id !== `view-${view}`; });
}

async function health() {
  try {
    const h = await api('/api/v1/health');
    const b = $('health-badge');
    b.textContent = h.status;
    b.className = `badge ${h.status}`;
  } catch { /* shown on the next try */ }
}

async function start() {
  $('login-form').addEventListener('submit', onLogin);
  setUnauthorizedHandler(() => { sessionStorage.clear(); showLogin('Your session ended; log in again.'); });
  const s = session();
  if (!s) { showLogin(); return; }
  applyRole(s.role);
  $('whoami').textContent = `${s.user} (${s.role})`;
  $('app').hidden = false;
  $('app').dataset.role = s.role;
  $('logout').addEventListener('click', async () => { await logout(); location.reload(); });
  const inv = new InvestigateView(s);
  let ops = null;
  if ($('view-operate') && ['operator', 'admin'].includes(s.role)) ops = new OperateView();
  else $('view-operate')?.remove();
  document.querySelectorAll('#tabs [role=tab]').forEach((t) => t.addEventListener('click', () => {
    selectTab(t.dataset.view);
    if (t.dataset.view === 'operate' && ops) ops.refresh();
    if (t.dataset.view === 'investigate') inv.map.render();
  }));
  selectTab('investigate');
  try {
    await inv.load();
  } catch (e) {
    $('search-status').textContent = `Cameras could not be loaded: ${e.message}`;
  }
  document.body.dataset.ready = 'true';
  health();
  setInterval(() => { health(); inv.refreshStatus().catch(() => {}); }, REFRESH_MS);
}

start();
