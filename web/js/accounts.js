// Calendar Integrations: the list of calendar accounts (tenants), Add Calendar Account,
// and each account's More Actions (Manage Calendars, Re-Authenticate, Remove Account).
import { api, seg } from './api.js';
import { announce, h } from './dom.js';
import { confirmDialog, openDialog, showDialogError } from './dialogs.js';
import { statusBadge, timeElement, plural } from './format.js';
import { actionMenu } from './menu.js';
import { showNotice } from './notices.js';

/** Send the browser to Microsoft's consent page; only https URLs (or the simulator's) are followed. */
function goToConsent(consentUrl) {
  const url = new URL(consentUrl, window.location.origin);
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('the consent address is not a web address');
  window.location.assign(url.href);
}

function openAddAccountDialog() {
  openDialog({
    title: 'Add Calendar Account',
    description: 'Enter the Microsoft 365 tenant: its tenant ID (a GUID) or a verified domain such as '
      + 'contoso.onmicrosoft.com. Authorize takes you to Microsoft to sign in as an administrator of that '
      + 'tenant and grant the permissions.',
    build: ({ body, footer, close, errorBox }) => {
      const input = h('input', {
        id: 'tenant-id', name: 'tenant_id', type: 'text', required: true, autocomplete: 'off',
        spellcheck: 'false', 'aria-describedby': 'tenant-id-help',
      });
      const authorize = h('button', { type: 'submit', class: 'button button-primary' }, 'Authorize');
      const form = h('form', { class: 'form', novalidate: true },
        h('label', { for: 'tenant-id' }, 'Tenant ID'),
        input,
        h('p', { id: 'tenant-id-help', class: 'help' }, 'Example: 72f988bf-86f1-41af-91ab-2d7cd011db47 or contoso.onmicrosoft.com'));
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        const tenant = input.value.trim();
        if (!tenant) {
          showDialogError(errorBox, 'Enter the tenant ID or domain.');
          input.focus();
          return;
        }
        authorize.disabled = true;
        authorize.textContent = 'Authorizing…';
        try {
          const result = await api('POST', '/api/accounts', { json: { tenant_id: tenant } });
          goToConsent(result.consent_url);
        } catch (error) {
          authorize.disabled = false;
          authorize.textContent = 'Authorize';
          showDialogError(errorBox, error.message);
          input.focus();
        }
      });
      authorize.setAttribute('form', 'add-account-form');
      form.id = 'add-account-form';
      body.append(form);
      footer.append(h('button', { type: 'button', class: 'button', onclick: () => close('cancel') }, 'Cancel'), authorize);
    },
  });
}

async function reauthenticate(account) {
  try {
    const result = await api('POST', `/api/accounts/${seg(account.id)}/reauthorize`);
    goToConsent(result.consent_url);
  } catch (error) {
    showNotice({ kind: 'error', title: `Re-Authenticate failed for ${account.tenant_name}`, lines: [error.message] });
  }
}

async function removeAccount(account, refresh) {
  let total = null;
  try {
    const page = await api('GET', `/api/accounts/${seg(account.id)}/calendars`, { query: { page_size: 1 } });
    total = page && page.counts ? page.counts.total : null;
  } catch {
    total = null; // the confirmation still says what goes, without the number
  }
  const calendars = total === null ? 'all of its room calendars' : plural(total, 'room calendar');
  let result = null;
  const confirmed = await confirmDialog({
    title: `Remove ${account.tenant_name}?`,
    lines: [
      `This removes the calendar account ${account.tenant_name} (tenant ${account.tenant_id}) and ${calendars}: `
        + 'their change subscriptions in Microsoft 365 are deleted and their spaces are unlinked.',
      'The admin consent stays in the tenant until a tenant administrator removes the app there. '
        + 'You can add the account again later.',
    ],
    confirmLabel: 'Remove Account',
    action: async () => {
      result = await api('DELETE', `/api/accounts/${seg(account.id)}`);
    },
  });
  if (!confirmed) return;
  const removed = result && typeof result.calendars_removed === 'number'
    ? ` and ${plural(result.calendars_removed, 'room calendar')}` : '';
  showNotice({ kind: 'success', title: `Removed ${account.tenant_name}${removed}.` });
  announce(`Removed ${account.tenant_name}`);
  await refresh();
}

function statusCell(account) {
  const reason = account.status === 'verified' ? null : account.status_reason || account.last_error;
  const missing = Array.isArray(account.missing_permissions) ? account.missing_permissions : [];
  return [
    statusBadge(account.status, account.status_label),
    reason ? h('p', { class: 'reason' }, reason) : null,
    account.status === 'verified' && missing.length
      ? h('p', { class: 'reason' }, `Missing permissions: ${missing.join(', ')}`) : null,
  ];
}

function accountRow(account, refresh) {
  const name = account.tenant_name || account.tenant_id;
  return h('tr', { dataset: { accountId: account.id } },
    h('th', { scope: 'row', 'data-label': 'Tenant' },
      h('a', { href: `#/accounts/${encodeURIComponent(account.id)}`, class: 'strong-link' }, name),
      account.tenant_name && account.tenant_name !== account.tenant_id
        ? h('span', { class: 'sub' }, account.tenant_id) : null),
    h('td', { 'data-label': 'Consented by' },
      account.consented_by || '—',
      account.verified_at ? h('span', { class: 'sub' }, 'on ', timeElement(account.verified_at)) : null),
    h('td', { 'data-label': 'Status' }, statusCell(account)),
    h('td', { 'data-label': 'Added' }, account.created_by || '—', h('span', { class: 'sub' }, timeElement(account.created_at))),
    h('td', { class: 'actions', 'data-label': 'Actions' }, actionMenu({
      label: `More actions for ${name}`,
      focusKey: `account:${account.id}`,
      items: [
        { label: 'Manage Calendars', onSelect: () => { window.location.hash = `#/accounts/${encodeURIComponent(account.id)}`; } },
        { label: 'Re-Authenticate', onSelect: () => reauthenticate(account) },
        { label: 'Remove Account', danger: true, onSelect: () => removeAccount(account, refresh) },
      ],
    })));
}

export async function renderAccounts(main, context) {
  const list = h('div', { class: 'panel', 'aria-busy': 'true' }, h('p', { class: 'loading' }, 'Loading accounts…'));
  const addButton = h('button', { type: 'button', class: 'button button-primary', onclick: openAddAccountDialog },
    'Add Calendar Account');
  context.setScreen(
    h('div', { class: 'page-head' },
      h('h1', { id: 'page-title', tabindex: '-1' }, 'Calendar Integrations'),
      addButton),
    h('p', { class: 'intro' }, 'Each calendar account is a Microsoft 365 tenant whose room calendars this '
      + 'product connects to your spaces. Add one, authorize it as a tenant administrator, then manage its calendars.'),
    list,
  );
  let disposed = false;
  context.onDispose(() => { disposed = true; });

  const refresh = async () => {
    let data;
    try {
      data = await api('GET', '/api/accounts');
    } catch (error) {
      if (disposed) return;
      list.replaceChildren(h('p', { class: 'error-text', role: 'alert' }, `The accounts could not be loaded: ${error.message}`),
        h('button', { type: 'button', class: 'button', onclick: refresh }, 'Try again'));
      list.removeAttribute('aria-busy');
      return;
    }
    if (disposed) return;
    const items = Array.isArray(data && data.items) ? data.items : [];
    list.removeAttribute('aria-busy');
    if (!items.length) {
      list.replaceChildren(h('p', { class: 'empty' }, 'No calendar accounts yet. Use Add Calendar Account to connect a '
        + 'Microsoft 365 tenant.'));
      return;
    }
    list.replaceChildren(h('table', { class: 'table responsive-table' },
      h('caption', { class: 'visually-hidden' }, 'Calendar accounts'),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Tenant'),
        h('th', { scope: 'col' }, 'Consented by'),
        h('th', { scope: 'col' }, 'Status'),
        h('th', { scope: 'col' }, 'Added by'),
        h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
      h('tbody', {}, items.map((account) => accountRow(account, refresh)))));
  };
  await refresh();
  if (!document.querySelector('dialog[open]')) document.getElementById('page-title')?.focus({ preventScroll: true });
}
