// Manage Calendars for one account: the tenant's readiness, add by email, Options for Adding Room,
// Connect Calendars, and the calendars table (filters, search, server paging by continuation token,
// per-row actions, each connected calendar's booking sync). While anything is queued, connecting or importing the
// screen polls every 2 s, and gently (every 12 s) while a shown calendar is connected, so status and
// sync changes show without a browser refresh; a poll that changed nothing leaves the table alone.
// The readiness report follows the calendars gently: refreshed when their count changed, not per poll.
// Only one page of calendars is ever held: 10,000 calendars are 200 pages of 50 on the server, not
// 10,000 rows in the browser.
import { api, seg } from './api.js';
import { announce, h, uniqueId } from './dom.js';
import { openBookingsDialog } from './bookings.js';
import { confirmDialog } from './dialogs.js';
import {
  CALENDAR_STATUS_LABELS, formatDue, formatDateTime, plural, refreshRelativeTimes, spaceLabel, statusBadge, timeElement,
} from './format.js';
import { openLinkDialog } from './link.js';
import { actionMenu, isMenuOpen } from './menu.js';
import { showNotice } from './notices.js';
import { optionsPanel } from './options.js';
import { readinessPanel } from './readiness.js';
import { syncCell } from './sync.js';

const POLL_MS = 2000;
const SYNC_POLL_MS = 12000; // while a shown calendar is connected: its sync state moves with each round
const PAGE_SIZES = [25, 50, 100];
const SEARCH_DELAY_MS = 300;

export async function renderCalendars(main, accountId, context) {
  const base = `/api/accounts/${seg(accountId)}`;
  const state = {
    status: '', linked: '', q: '', pageSize: 50,
    tokens: [null], page: 0, nextToken: null,
    counts: null, lastItemsKey: '', importing: false, disposed: false, pollTimer: null, loading: false,
    watchingSync: false,
  };
  const title = h('h1', { id: 'page-title', tabindex: '-1' }, 'Manage Calendars');
  const accountLine = h('p', { class: 'intro' });
  const accountWarning = h('div');
  context.setScreen(
    h('p', { class: 'breadcrumb' }, h('a', { href: '#/' }, '← Calendar Integrations')),
    title, accountLine, accountWarning,
    h('p', { class: 'loading' }, 'Loading…'));
  // A tab in the background is not polled; back in front, it catches up at once.
  const onVisibility = () => {
    if (!document.hidden && state.pollTimer !== null && !state.loading) schedulePoll(0);
  };
  document.addEventListener('visibilitychange', onVisibility);
  // Registered after setScreen: setScreen disposes the screen that was there before.
  let readiness = null;
  context.onDispose(() => {
    state.disposed = true;
    window.clearTimeout(state.pollTimer);
    if (readiness) readiness.dispose();
    document.removeEventListener('visibilitychange', onVisibility);
  });

  let account;
  try {
    account = await api('GET', base);
  } catch (error) {
    if (state.disposed) return;
    main.replaceChildren(
      h('p', { class: 'breadcrumb' }, h('a', { href: '#/' }, '← Calendar Integrations')),
      h('h1', { id: 'page-title', tabindex: '-1' }, 'Manage Calendars'),
      h('p', { class: 'error-text', role: 'alert' }, `This account could not be opened: ${error.message}`));
    return;
  }
  if (state.disposed) return;
  const tenant = account.tenant_name || account.tenant_id;
  title.textContent = `Manage Calendars: ${tenant}`;
  document.title = `Manage Calendars: ${tenant} · Room Calendar Connector`;
  accountLine.replaceChildren('Account status: ', statusBadge(account.status, account.status_label),
    account.consented_by ? ` · consented by ${account.consented_by}` : '');
  if (account.status !== 'verified') {
    accountWarning.replaceChildren(h('div', { class: 'notice notice-warning', role: 'status' },
      h('div', { class: 'notice-text' },
        h('p', { class: 'notice-title' }, `This account is ${String(account.status_label || account.status).toLowerCase()}.`),
        h('p', {}, account.status_reason || account.last_error
          || 'Calendars can be added and connected once a tenant administrator has authorized it.'),
        h('p', {}, 'Use Re-Authenticate on the Calendar Integrations page.'))));
  }

  // --- Add by email -------------------------------------------------------------------------
  const emailId = uniqueId('room-email');
  const emailInput = h('input', { id: emailId, type: 'email', name: 'email', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'room@contoso.com', required: true });
  const addMessage = h('div', { class: 'form-message', role: 'status' });
  const addButton = h('button', { type: 'submit', class: 'button button-primary' }, 'Add');
  const addForm = h('form', { class: 'form inline-form', novalidate: true },
    h('label', { for: emailId }, 'Room email'),
    h('div', { class: 'inline-controls' }, emailInput, addButton),
    addMessage);
  addForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    const email = emailInput.value.trim();
    if (!email) {
      addMessage.replaceChildren(h('p', { class: 'error-text' }, 'Enter the room\'s email address.'));
      emailInput.focus();
      return;
    }
    addButton.disabled = true;
    try {
      const calendar = await api('POST', `${base}/calendars`, { json: { email } });
      addMessage.replaceChildren(h('p', { class: 'success-text' },
        `Added ${calendar.email}. Use Connect Calendars to connect it.`));
      emailInput.value = '';
      await loadPage();
    } catch (error) {
      addMessage.replaceChildren(h('p', { class: 'error-text', role: 'alert' }, `${email} was not added: ${error.message}`));
    } finally {
      addButton.disabled = false;
      emailInput.focus();
    }
  });

  // --- Connect Calendars --------------------------------------------------------------------
  const connectButton = h('button', { type: 'button', class: 'button button-primary' }, 'Connect Calendars');
  const connectMessage = h('div', { class: 'form-message', role: 'status' });
  const countsLine = h('p', { class: 'counts', 'aria-live': 'polite' });
  const connectorLine = h('p', { class: 'sub connector-line' });
  connectButton.addEventListener('click', async () => {
    connectButton.disabled = true;
    try {
      const result = await api('POST', `${base}/calendars/connect`);
      const due = result.next_run_at ? formatDue(result.next_run_at) : null;
      connectMessage.replaceChildren(h('p', { class: 'success-text' },
        result.queued
          ? `${plural(result.queued, 'calendar')} queued for connection.${due ? ` The next run is due at ${due}.` : ''} `
            + 'The status below updates on its own.'
          : 'Nothing to queue: every calendar is already queued, connecting or connected.'));
      announce(`${result.queued} calendars queued`);
      await loadPage();
    } catch (error) {
      connectMessage.replaceChildren(h('p', { class: 'error-text', role: 'alert' }, `Connect Calendars failed: ${error.message}`));
    } finally {
      connectButton.disabled = false;
    }
  });
  const loadConnectorStatus = async () => {
    try {
      const status = await api('GET', '/api/connector/status');
      const parts = [];
      if (status && status.next_run_at) parts.push(`Next connector run: ${formatDue(status.next_run_at)}.`);
      const running = (status && status.running) || [];
      if (running.length && running[0].started_at) {
        parts.push(`A connector run is in progress (started ${formatDateTime(running[0].started_at)}).`);
      }
      const last = status && status.last_run;
      if (last && last.finished_at) {
        parts.push(`Last run finished ${formatDateTime(last.finished_at)}: ${last.connected || 0} connected, `
          + `${last.renewed || 0} renewed, ${last.failed || 0} failed.`);
      }
      const interrupted = status && status.interrupted_run;
      if (interrupted && interrupted.last_seen_at) {
        parts.push(`A later run stopped before it finished (last seen ${formatDateTime(interrupted.last_seen_at)}): `
          + 'the rooms it held wait until their leases lapse, then the next run connects them.');
      }
      connectorLine.textContent = parts.join(' ');
    } catch {
      connectorLine.textContent = '';
    }
  };

  // --- Readiness ----------------------------------------------------------------------------
  readiness = readinessPanel(accountId, { isDisposed: () => state.disposed });

  // --- Options for Adding Room --------------------------------------------------------------
  const options = optionsPanel(accountId, {
    onReadinessChecked: (report) => readiness.show(report),
    onChanged: () => { loadPage(); },
    setImporting: (value) => {
      state.importing = value;
      if (!value) schedulePoll();
    },
    isDisposed: () => state.disposed,
  });

  // --- The calendars table ------------------------------------------------------------------
  const statusId = uniqueId('status-filter');
  const linkedId = uniqueId('linked-filter');
  const searchId = uniqueId('calendar-search');
  const sizeId = uniqueId('page-size');
  const statusSelect = h('select', { id: statusId },
    h('option', { value: '' }, 'All statuses'),
    Object.entries(CALENDAR_STATUS_LABELS).map(([value, label]) => h('option', { value }, label)));
  const linkedSelect = h('select', { id: linkedId },
    h('option', { value: '' }, 'Linked or not'),
    h('option', { value: 'true' }, 'Linked to a space'),
    h('option', { value: 'false' }, 'Not linked'));
  const searchInput = h('input', { id: searchId, type: 'search', autocomplete: 'off', spellcheck: 'false',
    placeholder: 'Email starts with…' });
  const sizeSelect = h('select', { id: sizeId }, PAGE_SIZES.map((size) => h('option', { value: String(size), selected: size === state.pageSize }, String(size))));
  const tableArea = h('div', { class: 'table-area', 'aria-live': 'off', 'aria-busy': 'true' });
  const pageInfo = h('p', { class: 'page-info', 'aria-live': 'polite' });
  const prevButton = h('button', { type: 'button', class: 'button', disabled: true }, 'Previous page');
  const nextButton = h('button', { type: 'button', class: 'button', disabled: true }, 'Next page');

  const resetPaging = () => {
    state.tokens = [null];
    state.page = 0;
  };
  statusSelect.addEventListener('change', () => { state.status = statusSelect.value; resetPaging(); loadPage(); });
  linkedSelect.addEventListener('change', () => { state.linked = linkedSelect.value; resetPaging(); loadPage(); });
  sizeSelect.addEventListener('change', () => { state.pageSize = Number(sizeSelect.value); resetPaging(); loadPage(); });
  let searchTimer = null;
  searchInput.addEventListener('input', () => {
    window.clearTimeout(searchTimer);
    searchTimer = window.setTimeout(() => {
      if (state.q === searchInput.value.trim()) return;
      state.q = searchInput.value.trim();
      resetPaging();
      loadPage();
    }, SEARCH_DELAY_MS);
  });
  const filterForm = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter calendars' },
    h('div', { class: 'field' }, h('label', { for: searchId }, 'Search by email'), searchInput),
    h('div', { class: 'field' }, h('label', { for: statusId }, 'Status'), statusSelect),
    h('div', { class: 'field' }, h('label', { for: linkedId }, 'Space link'), linkedSelect),
    h('div', { class: 'field' }, h('label', { for: sizeId }, 'Per page'), sizeSelect));
  filterForm.addEventListener('submit', (event) => {
    event.preventDefault();
    window.clearTimeout(searchTimer);
    state.q = searchInput.value.trim();
    resetPaging();
    loadPage();
  });
  prevButton.addEventListener('click', () => {
    if (state.page === 0) return;
    state.page -= 1;
    loadPage({ focusTable: true });
  });
  nextButton.addEventListener('click', () => {
    if (!state.nextToken) return;
    state.tokens[state.page + 1] = state.nextToken;
    state.page += 1;
    loadPage({ focusTable: true });
  });

  const unlink = async (calendar) => {
    try {
      await api('DELETE', `${base}/calendars/${seg(calendar.email)}/space`);
      showNotice({ kind: 'success', id: 'row-action', title: `Unlinked ${calendar.email} from ${spaceLabel(calendar.space)}.` });
      await loadPage();
    } catch (error) {
      showNotice({ kind: 'error', id: 'row-action', title: `${calendar.email} was not unlinked`, lines: [error.message] });
    }
  };
  const remove = async (calendar) => {
    const lines = [`This removes ${calendar.email} from this account and deletes its change subscription in Microsoft 365.`];
    if (calendar.space) lines.push(`Its space ${spaceLabel(calendar.space)} is unlinked and free for another calendar.`);
    lines.push('You can add it again later.');
    const confirmed = await confirmDialog({
      title: `Remove ${calendar.email}?`,
      lines,
      confirmLabel: 'Remove Calendar',
      action: () => api('DELETE', `${base}/calendars/${seg(calendar.email)}`),
    });
    if (!confirmed) return;
    showNotice({ kind: 'success', id: 'row-action', title: `Removed ${calendar.email}.` });
    await loadPage();
  };

  const calendarRow = (calendar) => {
    const items = [];
    if (calendar.status === 'connected') {
      items.push({
        label: 'Bookings',
        // Back from the dialog, the table shows what the connection test changed (a refused write).
        onSelect: () => openBookingsDialog(accountId, calendar, { onClosed: () => loadPage({ fromPoll: true }) }),
      });
    }
    items.push({
      label: 'Link to space',
      onSelect: () => openLinkDialog(accountId, calendar, (updated, space) => {
        showNotice({ kind: 'success', id: 'row-action', title: `Linked ${calendar.email} to ${spaceLabel(updated.space || space)}.` });
        loadPage();
      }),
    });
    if (calendar.space) items.push({ label: 'Unlink from space', onSelect: () => unlink(calendar) });
    items.push({ label: 'Remove Calendar', danger: true, onSelect: () => remove(calendar) });
    const reason = calendar.status_reason || (calendar.status === 'failed' ? calendar.last_error : null);
    const retry = calendar.status === 'failed' && calendar.next_attempt_at
      ? `Next try ${formatDue(calendar.next_attempt_at)}` : null;
    return h('tr', { dataset: { email: calendar.email, status: calendar.status } },
      h('th', { scope: 'row', 'data-label': 'Email' }, calendar.email,
        calendar.display_name ? h('span', { class: 'sub' }, calendar.display_name) : null),
      h('td', { class: 'space-cell', 'data-label': 'Linked space' }, calendar.space
        ? [spaceLabel(calendar.space)] : h('span', { class: 'muted' }, 'Not linked')),
      h('td', { 'data-label': 'Status' }, statusBadge(calendar.status),
        reason ? h('p', { class: 'reason' }, reason) : null, retry ? h('p', { class: 'reason' }, retry) : null),
      h('td', { class: 'sync-cell', 'data-label': 'Sync' }, syncCell(calendar.sync)),
      h('td', { 'data-label': 'Last activity' }, timeElement(calendar.last_activity_at || calendar.last_notification_at)),
      h('td', { class: 'actions', 'data-label': 'Actions' }, actionMenu({
        label: `More actions for ${calendar.email}`, focusKey: `calendar:${calendar.email}`, items,
      })));
  };

  const renderCounts = (counts) => {
    if (!counts) return;
    const parts = Object.keys(CALENDAR_STATUS_LABELS)
      .filter((status) => counts[status])
      .map((status) => `${(counts[status] || 0).toLocaleString()} ${CALENDAR_STATUS_LABELS[status].toLowerCase()}`);
    countsLine.textContent = counts.total
      ? `${plural(counts.total, 'calendar')} in this account (${parts.join(', ')}); ${(counts.linked || 0).toLocaleString()} linked to spaces.`
      : 'No calendars in this account yet.';
    for (const option of statusSelect.options) {
      if (option.value) option.textContent = `${CALENDAR_STATUS_LABELS[option.value]} (${(counts[option.value] || 0).toLocaleString()})`;
    }
  };

  const renderTable = (items, focusTable) => {
    const focusKey = document.activeElement && tableArea.contains(document.activeElement)
      ? document.activeElement.dataset.focusKey : null;
    if (!items.length) {
      const filtered = state.status || state.linked || state.q;
      tableArea.replaceChildren(h('p', { class: 'empty' }, filtered
        ? 'No calendar matches these filters.'
        : 'No calendars yet. Add one by email, upload a CSV, or discover the tenant\'s rooms.'));
    } else {
      tableArea.replaceChildren(h('table', { class: 'table responsive-table calendars-table' },
        h('caption', { class: 'visually-hidden' }, 'Room calendars'),
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, 'Email'),
          h('th', { scope: 'col' }, 'Linked space'),
          h('th', { scope: 'col' }, 'Status'),
          h('th', { scope: 'col' }, 'Sync'),
          h('th', { scope: 'col' }, 'Last activity'),
          h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
        h('tbody', {}, items.map(calendarRow))));
    }
    if (focusKey) {
      const twin = Array.from(tableArea.querySelectorAll('[data-focus-key]')).find((el) => el.dataset.focusKey === focusKey);
      if (twin) twin.focus();
    } else if (focusTable) {
      tableHeading.focus();
    }
  };

  const loadPage = async ({ focusTable = false, fromPoll = false } = {}) => {
    if (state.disposed) return;
    window.clearTimeout(state.pollTimer);
    state.loading = true;
    // Only the latest request may render: a slow answer to an older filter must not win.
    state.sequence = (state.sequence || 0) + 1;
    const sequence = state.sequence;
    if (!fromPoll) tableArea.setAttribute('aria-busy', 'true');
    try {
      const data = await api('GET', `${base}/calendars`, {
        query: {
          status: state.status, linked: state.linked, q: state.q, page_size: state.pageSize,
          continuation_token: state.tokens[state.page],
        },
      });
      if (state.disposed || sequence !== state.sequence) return;
      const items = Array.isArray(data.items) ? data.items : [];
      state.nextToken = data.continuation_token || null;
      state.counts = data.counts || null;
      state.watchingSync = items.some((calendar) => calendar.status === 'connected');
      renderCounts(state.counts);
      readiness.noteCalendars(state.counts);
      const key = JSON.stringify(items);
      // A poll that changed nothing leaves the table (and the keyboard focus in it) alone;
      // only its "5 minutes ago" texts move on.
      if (!fromPoll || key !== state.lastItemsKey) renderTable(items, focusTable);
      else refreshRelativeTimes(tableArea);
      state.lastItemsKey = key;
      const first = state.page * state.pageSize + 1;
      pageInfo.textContent = items.length
        ? `Page ${state.page + 1}: calendars ${first.toLocaleString()}–${(first + items.length - 1).toLocaleString()}`
        : `Page ${state.page + 1}`;
      prevButton.disabled = state.page === 0;
      nextButton.disabled = !state.nextToken;
    } catch (error) {
      if (state.disposed || sequence !== state.sequence) return;
      tableArea.replaceChildren(h('p', { class: 'error-text', role: 'alert' }, `The calendars could not be loaded: ${error.message}`));
      state.lastItemsKey = ''; // the next answer puts the table back, even when its rows did not change
    } finally {
      if (sequence === state.sequence) {
        state.loading = false;
        tableArea.setAttribute('aria-busy', 'false');
      }
    }
    if (sequence !== state.sequence) return;
    loadConnectorStatus();
    schedulePoll();
  };

  const busy = () => state.importing
    || Boolean(state.counts && ((state.counts.queued || 0) + (state.counts.connecting || 0) > 0));

  function schedulePoll(delay) {
    window.clearTimeout(state.pollTimer);
    state.pollTimer = null;
    if (state.disposed) return;
    const wait = delay !== undefined ? delay : busy() ? POLL_MS : state.watchingSync ? SYNC_POLL_MS : null;
    if (wait === null) return;
    state.pollTimer = window.setTimeout(() => {
      // Never pull the rows out from under an open menu or dialog, nor poll a hidden tab: try again later.
      if (isMenuOpen() || document.querySelector('dialog[open]') || state.loading || document.hidden) {
        schedulePoll();
        return;
      }
      loadPage({ fromPoll: true });
    }, wait);
  }

  const tableHeading = h('h2', { id: 'calendars-heading', tabindex: '-1' }, 'Calendars');
  main.replaceChildren(
    h('p', { class: 'breadcrumb' }, h('a', { href: '#/' }, '← Calendar Integrations')),
    title, accountLine, accountWarning,
    readiness.panel,
    h('section', { class: 'panel', 'aria-labelledby': 'add-heading' },
      h('h2', { id: 'add-heading' }, 'Add a room calendar'), addForm),
    options.panel,
    h('section', { class: 'panel', 'aria-labelledby': 'connect-heading' },
      h('h2', { id: 'connect-heading' }, 'Connect Calendars'),
      h('p', {}, 'Queues every added (or failed) calendar. The connector connects them on its next run, within '
        + '15 minutes; the statuses below update on their own.'),
      h('div', { class: 'form-actions' }, connectButton), connectMessage, connectorLine),
    h('section', { class: 'panel', 'aria-labelledby': 'calendars-heading' },
      tableHeading, countsLine, filterForm, tableArea,
      h('nav', { class: 'pager', 'aria-label': 'Calendar pages' }, prevButton, pageInfo, nextButton)),
  );
  title.focus({ preventScroll: true });
  readiness.load();
  await loadPage();
  options.resumeRunningImport();
}
