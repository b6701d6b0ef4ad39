// The admin page's entry point: sign-in check, hash routing, and the consent return message.
// Routes: #/ (Calendar Integrations) and #/accounts/<id> (Manage Calendars of one account).
import { api, ApiError, onAuthProblem, seg } from './api.js';
import { h } from './dom.js';
import { clearNotices, showNotice } from './notices.js';
import { renderAccounts } from './accounts.js';
import { renderCalendars } from './calendars.js';

const main = document.getElementById('main');
let disposeScreen = null;
let blocked = false;

function setScreen(...children) {
  if (disposeScreen) disposeScreen();
  disposeScreen = null;
  main.replaceChildren(...children);
}

async function loginUrl() {
  const back = `${window.location.pathname}${window.location.hash}`;
  const target = encodeURIComponent(back.startsWith('/') ? back : '/');
  // Locally devhost offers a dev sign-in; in Azure the platform's Microsoft Entra sign-in.
  try {
    const probe = await fetch('/.auth/login/dev', { method: 'GET', credentials: 'same-origin', redirect: 'manual' });
    if (probe.status === 200) return { url: `/.auth/login/dev?post_login_redirect_uri=${target}`, dev: true };
  } catch {
    // not there: use the platform's sign-in
  }
  return { url: `/.auth/login/aad?post_login_redirect_uri=${target}`, dev: false };
}

async function showSignIn(reason) {
  blocked = true;
  const login = await loginUrl();
  setScreen(
    h('h1', { id: 'page-title', tabindex: '-1' }, 'Sign in'),
    h('p', {}, reason || 'Sign in with an administrator account to manage calendar integrations.'),
    h('p', {}, h('a', { class: 'button button-primary', href: login.url },
      login.dev ? 'Sign in (local development)' : 'Sign in with Microsoft')),
  );
  document.getElementById('page-title').focus();
}

function showAdminsOnly(name) {
  blocked = true;
  clearNotices();
  setScreen(
    h('h1', { id: 'page-title', tabindex: '-1' }, 'Administrators only'),
    h('p', {}, name
      ? `You are signed in as ${name}, but this page is for administrators only.`
      : 'You are signed in, but this page is for administrators only.'),
    h('p', {}, 'Ask an administrator of this Room Calendar Connector to give you the administrator role, '
      + 'then sign in again.'),
    h('p', {}, h('a', { class: 'button', href: '/.auth/logout?post_logout_redirect_uri=/' }, 'Sign out')),
  );
  document.getElementById('page-title').focus();
}

/** Who is signed in, from the platform's /.auth/me (App Service or Static Web Apps format). */
async function readSignedInUser() {
  let response;
  try {
    response = await fetch('/.auth/me', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
  } catch {
    return { known: false };
  }
  if (!response.ok) return { known: false };
  let data;
  try {
    data = await response.json();
  } catch {
    return { known: false };
  }
  if (Array.isArray(data)) {
    if (data.length === 0) return { known: true, user: null };
    const entry = data[0] || {};
    const claims = Array.isArray(entry.user_claims) ? entry.user_claims : [];
    const claim = (type) => (claims.find((c) => c && c.typ === type) || {}).val;
    return { known: true, user: { name: claim('name') || claim('preferred_username') || entry.user_id || 'signed in' } };
  }
  if (data && typeof data === 'object' && 'clientPrincipal' in data) {
    const principal = data.clientPrincipal;
    return { known: true, user: principal ? { name: principal.userDetails || 'signed in' } : null };
  }
  return { known: false };
}

function renderUserNav(user) {
  const nav = document.getElementById('user-nav');
  nav.replaceChildren();
  if (!user) return;
  nav.append(
    h('span', { class: 'user-name' }, `Signed in as ${user.name}`),
    h('a', { class: 'sign-out', href: '/.auth/logout?post_logout_redirect_uri=/' }, 'Sign out'),
  );
}

const CONSENT_MESSAGES = {
  verified: 'The tenant granted the permissions and the connection was proven.',
  declined: 'Consent was cancelled or declined on Microsoft\'s page. Nothing was granted. '
    + 'Use Re-Authenticate to try again.',
  not_admin: 'The account that signed in on Microsoft\'s page cannot grant admin consent. '
    + 'Sign in there as a Global Administrator or Privileged Role Administrator of the tenant.',
  expired: 'The consent took too long and its link expired. Use Re-Authenticate to start again.',
  replayed: 'This consent response was already used. Use Re-Authenticate to start again.',
  invalid_state: 'The consent response could not be matched to a request from this page. Start again.',
  wrong_admin: 'Consent must be completed by the administrator who started it, in the same browser.',
  tenant_mismatch: 'Consent was given in a different tenant than the one this account is for.',
  grant_unproven: 'Microsoft reported consent, but the permissions could not be proven yet. '
    + 'Wait a minute and use Re-Authenticate.',
  graph_unreachable: 'Microsoft Graph could not be reached to check the permissions. Re-Authenticate shortly.',
  invalid_response: 'Microsoft\'s answer was not a valid consent response. Start again.',
  consent_error: 'Microsoft reported an error during consent. Use Re-Authenticate to try again.',
  account_removed: 'The account was removed while consent was in progress.',
};

/** The return from Microsoft's consent page: `/?consent=<code>&account=<id>`. */
async function showConsentOutcome() {
  const params = new URLSearchParams(window.location.search);
  const code = params.get('consent');
  if (!code) return;
  const accountId = params.get('account');
  // Drop the query so a reload does not show the message again; keep the screen the admin returns to.
  window.history.replaceState(null, '', `${window.location.pathname}#/`);
  let account = null;
  if (accountId && code !== 'account_removed') {
    try {
      account = await api('GET', `/api/accounts/${seg(accountId)}`);
    } catch (error) {
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) return;
    }
  }
  const tenant = account ? account.tenant_name || account.tenant_id : null;
  if (code === 'verified') {
    const missing = account && Array.isArray(account.missing_permissions) ? account.missing_permissions : [];
    showNotice({
      kind: missing.length ? 'warning' : 'success',
      id: 'consent',
      title: tenant ? `Account Verified: ${tenant}` : 'Account Verified',
      lines: [CONSENT_MESSAGES.verified,
        missing.length ? `Missing permissions: ${missing.join(', ')}. Grant them and use Re-Authenticate.` : null],
    });
    return;
  }
  const detail = account && (account.last_error || account.status_reason);
  showNotice({
    kind: 'error',
    id: 'consent',
    title: tenant ? `Consent was not completed for ${tenant}` : 'Consent was not completed',
    lines: [CONSENT_MESSAGES[code] || 'The consent did not succeed. Use Re-Authenticate to try again.',
      detail ? `Details: ${detail}` : null],
  });
}

function route() {
  if (blocked) return;
  const hash = window.location.hash || '#/';
  const match = /^#\/accounts\/([^/?#]+)\/?$/.exec(hash);
  const context = { setScreen, onDispose: (fn) => { disposeScreen = fn; } };
  if (match) {
    renderCalendars(main, decodeURIComponent(match[1]), context);
  } else {
    renderAccounts(main, context);
  }
}

async function boot() {
  onAuthProblem((error) => {
    if (blocked) return;
    if (error.status === 401) showSignIn('Your sign-in has ended. Sign in again to continue.');
    else showAdminsOnly(currentUserName);
  });
  const me = await readSignedInUser();
  if (me.known && !me.user) {
    await showSignIn();
    return;
  }
  currentUserName = me.user ? me.user.name : null;
  renderUserNav(me.user);
  await showConsentOutcome();
  window.addEventListener('hashchange', () => {
    clearNotices();
    route();
  });
  route();
}

let currentUserName = null;
boot();
