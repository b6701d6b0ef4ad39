// The Readiness panel of Manage Calendars: how far this app reaches in the tenant (every calendar,
// or room mailboxes only) with its fix and the RBAC script, when that was checked, what the rooms
// need (counts per kind first; the rooms listed 25 at a time, with "show all"), the room settings
// script for all rooms or the chosen ones, and Re-check. It fetches only the account's readiness
// report: the screen tells it when the account's calendars changed and it refreshes gently then
// (at most every 10 s, never on each poll); a refresh that changed nothing leaves the panel, the
// admin's choices and the keyboard focus alone. Also the findings' words for Discover.
import { api, seg } from './api.js';
import { h, uniqueId } from './dom.js';
import { plural, refreshRelativeTimes, relativeTimeElement } from './format.js';

const FIRST_ROWS = 25;
const GENTLE_MS = 10000;
// room-settings.ps1?rooms= is documented up to 4,000 characters: more rooms than that are "all rooms".
const SCRIPT_ROOMS_MAX_CHARS = 4000;

/** Short words for each kind of finding (the API's `reason` says the rest). */
export const KIND_LABELS = {
  tenant_wide_access: 'Reads every calendar',
  scoped_to_rooms: 'Scoped to room mailboxes',
  access_unknown: 'Access unknown',
  room_not_found: 'Not found',
  not_a_room_mailbox: 'Not a room mailbox',
  not_reachable_by_graph: 'Not reachable by Graph (on-premises or hybrid)',
  access_denied_by_scope: 'Denied by the app\'s scope',
  subjects_replaced_by_organizer: 'Subjects replaced by the organizer',
  mailbox_purpose_unknown: 'Room or not: unknown',
  not_checked: 'Not checked',
};
const SEVERITY_WORDS = { ok: 'Good', warning: 'Warning', error: 'Problem' };
const SEVERITY_ORDER = { error: 0, warning: 1, ok: 2 };

function kindLabel(kind) {
  return KIND_LABELS[kind] || String(kind || 'Finding');
}

/** The API's words end without a full stop; the page's sentences end with one. */
function sentence(text) {
  const words = String(text || '').trim();
  return !words || /[.!?]$/.test(words) ? words : `${words}.`;
}

function severityOf(value) {
  return Object.hasOwn(SEVERITY_WORDS, value) ? value : 'warning';
}

/** One finding of a room in words: its kind as a marker (the word, not only the colour), the
 * reason, and what to do. */
export function findingItem(finding) {
  const severity = severityOf(finding.severity);
  return h('li', { class: ['finding', `finding-${severity}`], dataset: { kind: String(finding.kind || '') } },
    h('span', { class: ['marker', `marker-${severity}`] }, kindLabel(finding.kind)),
    ' ', h('span', { class: 'finding-reason' }, sentence(finding.reason)),
    finding.fix ? h('span', { class: 'finding-fix' }, `To fix: ${sentence(finding.fix)}`) : null);
}

/** What the last check found for one room, for Discover: null is "never checked". */
export function roomReadiness(findings) {
  if (findings === null || findings === undefined) return h('span', { class: 'marker' }, 'Not checked yet');
  if (!Array.isArray(findings) || !findings.length) return h('span', { class: 'marker marker-ok' }, 'No problems found');
  return h('ul', { class: 'findings' }, findings.map(findingItem));
}

function scriptHref(value, fallback) {
  // Only our own API's addresses become links.
  return typeof value === 'string' && value.startsWith('/api/') ? value : fallback;
}

function byRoom(findings) {
  const rooms = new Map();
  for (const finding of findings) {
    if (!finding.room) continue;
    if (!rooms.has(finding.room)) rooms.set(finding.room, []);
    rooms.get(finding.room).push(finding);
  }
  const worst = (list) => Math.min(...list.map((f) => SEVERITY_ORDER[severityOf(f.severity)]));
  return [...rooms.entries()]
    .map(([email, list]) => ({ email, findings: list, worst: worst(list) }))
    .sort((a, b) => a.worst - b.worst || (a.email < b.email ? -1 : Number(a.email > b.email)));
}

/**
 * The panel for `accountId`. Returns {panel, load, show, noteCalendars, dispose}: `load()` fetches
 * the report; `show(report)` puts a report another part of the screen got (Discover's check) on it;
 * `noteCalendars(counts)` takes the calendars table's counts on each of its loads.
 */
export function readinessPanel(accountId, { isDisposed }) {
  const base = `/api/accounts/${seg(accountId)}/readiness`;
  const state = {
    report: null, reportKey: '', renderedKey: '', refreshProblem: false, sequence: 0, loadedAt: 0, timer: null,
    checking: false, calendarCount: null, calendarsKey: null,
    // The admin's choices, kept across refreshes: chosen rooms, the kind shown, the list's size, the script's option.
    picks: new Set(), kind: '', showAll: false, listOpen: null, external: 'false',
  };

  const headingId = uniqueId('readiness-heading');
  const explainId = uniqueId('recheck-explain');
  // aria-disabled, not disabled, while it runs: a disabled button would drop the keyboard focus.
  const recheckButton = h('button', { type: 'button', class: 'button button-primary', 'aria-describedby': explainId },
    'Re-check');
  const checkStatus = h('p', { class: 'check-status', role: 'status' });
  const checkError = h('div', { class: 'check-error', role: 'alert' });
  const content = h('div', { class: 'readiness-content', 'aria-busy': 'true' },
    h('p', { class: 'loading' }, 'Loading readiness…'));
  const panel = h('section', { class: 'panel readiness-panel', 'aria-labelledby': headingId },
    h('h2', { id: headingId }, 'Readiness'),
    h('p', { class: 'intro' }, 'How much of the tenant this app can read, and what each room needs before its '
      + 'bookings sync well.'),
    content,
    h('div', { class: 'recheck' },
      h('div', { class: 'form-actions' }, recheckButton),
      h('p', { id: explainId, class: 'help' }, 'Re-check tests the app\'s access and every calendar of this account '
        + 'again: a few seconds normally, up to a minute for thousands of rooms.'),
      checkStatus, checkError));

  // --- The access headline ------------------------------------------------------------------
  const accessBox = (report) => {
    const access = ['tenant_wide', 'rooms_only'].includes(report.access) ? report.access : 'unknown';
    const finding = (report.findings || []).find((f) => !f.room) || null;
    const severity = finding ? severityOf(finding.severity) : 'warning';
    const headline = finding ? finding.reason : 'Whether this app can read people\'s calendars is unknown';
    const rbac = scriptHref(report.scripts && report.scripts.rbac, `${base}/rbac.ps1`);
    return h('div', { class: ['readiness-access', `readiness-${severity}`], dataset: { access } },
      h('p', { class: 'readiness-headline' },
        h('span', { class: ['marker', `marker-${severity}`] }, SEVERITY_WORDS[severity]), ' ', headline),
      report.access_detail ? h('p', {}, `Details: ${sentence(report.access_detail)}`) : null,
      finding && finding.fix ? h('p', {}, `To fix: ${sentence(finding.fix)}`) : null,
      h('p', { class: 'form-actions' },
        h('a', { class: access === 'rooms_only' ? 'button' : 'button button-primary', href: rbac, download: true,
          dataset: { script: 'rbac', focusKey: 'readiness:rbac' } },
          access === 'rooms_only' ? 'Download the RBAC script again (.ps1)' : 'Download the RBAC script (.ps1)')),
      h('p', { class: 'sub' }, report.checked_at
        ? ['Checked ', relativeTimeElement(report.checked_at), '.'] : 'Not checked yet.'));
  };

  // --- The rooms: counts per kind, then the list ----------------------------------------------
  const roomsSection = (report) => {
    const roomsHeadingId = uniqueId('readiness-rooms');
    const checked = Number(report.rooms_checked) || 0;
    const withFindings = Number(report.rooms_with_findings) || 0;
    const roomKinds = new Set((report.findings || []).filter((f) => f.room).map((f) => f.kind));
    const counts = Object.entries(report.counts || {})
      .filter(([kind, count]) => roomKinds.has(kind) && count > 0)
      .sort((a, b) => b[1] - a[1] || kindLabel(a[0]).localeCompare(kindLabel(b[0])));
    const unchecked = state.calendarCount !== null ? Math.max(0, state.calendarCount - checked) : 0;
    let summaryLine;
    if (checked) {
      summaryLine = h('p', { class: 'rooms-summary' }, `${plural(checked, 'room')} checked: `
        + `${withFindings ? `${withFindings.toLocaleString()} with findings` : 'no problems found'}.`);
    } else if (unchecked) {
      summaryLine = h('p', { class: 'rooms-summary warning-text' }, unchecked === 1
        ? 'This account\'s calendar has not been checked yet: press Re-check.'
        : `None of this account's ${unchecked.toLocaleString()} calendars has been checked yet: press Re-check.`);
    } else {
      summaryLine = h('p', { class: 'rooms-summary' }, 'No room of this account has been checked yet.');
    }
    const section = h('section', { class: 'readiness-rooms', 'aria-labelledby': roomsHeadingId },
      h('h3', { id: roomsHeadingId }, 'Rooms'),
      summaryLine,
      checked && unchecked ? h('p', { class: 'warning-text unchecked' }, `${plural(unchecked, 'calendar')} added since `
        + `the last check ${unchecked === 1 ? 'is' : 'are'} not checked yet: Re-check checks `
        + `${unchecked === 1 ? 'it' : 'them'}.`) : null);
    if (counts.length) {
      section.append(h('ul', { class: 'readiness-counts', 'aria-label': 'Findings by kind' },
        counts.map(([kind, count]) => h('li', { dataset: { kind } },
          h('span', { class: 'count' }, count.toLocaleString()), ' ', kindLabel(kind)))));
    }
    const rooms = byRoom(report.findings || []);
    if (rooms.length) section.append(findingsList(rooms, counts));
    return section;
  };

  const findingsList = (allRooms, counts) => {
    if (state.kind && !counts.some(([kind]) => kind === state.kind)) state.kind = '';
    const rooms = state.kind ? allRooms.filter((room) => room.findings.some((f) => f.kind === state.kind)) : allRooms;
    const known = new Set(allRooms.map((room) => room.email));
    for (const email of [...state.picks]) if (!known.has(email)) state.picks.delete(email);
    const details = h('details', { class: 'readiness-details' },
      h('summary', { dataset: { focusKey: 'readiness:list' } }, `Rooms with findings (${allRooms.length.toLocaleString()})`));
    details.open = state.listOpen !== null ? state.listOpen : allRooms.length <= FIRST_ROWS;
    details.addEventListener('toggle', () => { state.listOpen = details.open; });

    const kindId = uniqueId('finding-kind');
    const kindSelect = h('select', { id: kindId, dataset: { focusKey: 'readiness:kind' } },
      h('option', { value: '' }, `Every kind (${plural(allRooms.length, 'room')})`),
      counts.map(([kind, count]) => h('option', { value: kind, selected: kind === state.kind },
        `${kindLabel(kind)} (${count.toLocaleString()})`)));
    kindSelect.addEventListener('change', () => {
      state.kind = kindSelect.value;
      state.showAll = false;
      render({ force: true });
    });

    // Choosing rooms changes the checkboxes and the script's links only: the list is not rebuilt.
    const everyId = uniqueId('choose-listed');
    const every = h('input', { id: everyId, type: 'checkbox', dataset: { focusKey: 'readiness:every' } });
    const boxes = [];
    const syncEvery = () => {
      every.checked = rooms.length > 0 && rooms.every((room) => state.picks.has(room.email));
    };
    every.addEventListener('change', () => {
      for (const room of rooms) {
        if (every.checked) state.picks.add(room.email);
        else state.picks.delete(room.email);
      }
      for (const box of boxes) box.checked = state.picks.has(box.dataset.email);
      renderDownloads();
    });
    const shown = state.showAll ? rooms : rooms.slice(0, FIRST_ROWS);
    const rows = shown.map((room) => {
      const pickId = uniqueId('choose-room');
      const pick = h('input', { id: pickId, type: 'checkbox', checked: state.picks.has(room.email),
        dataset: { email: room.email, focusKey: `readiness:${room.email}` } });
      boxes.push(pick);
      pick.addEventListener('change', () => {
        if (pick.checked) state.picks.add(room.email);
        else state.picks.delete(room.email);
        syncEvery();
        renderDownloads();
      });
      return h('tr', { dataset: { email: room.email } },
        h('td', { class: 'pick-cell', 'data-label': 'For the room settings script' }, h('div', { class: 'check' }, pick,
          h('label', { for: pickId }, h('span', { class: 'visually-hidden' }, `Choose ${room.email}`)))),
        h('th', { scope: 'row', 'data-label': 'Room' }, room.email),
        h('td', { 'data-label': 'Findings' }, h('ul', { class: 'findings' }, room.findings.map(findingItem))));
    });
    syncEvery();
    details.append(
      h('div', { class: 'findings-controls' },
        h('div', { class: 'field' }, h('label', { for: kindId }, 'Kind of finding'), kindSelect),
        h('div', { class: 'check' }, every, h('label', { for: everyId },
          `Choose every listed room (${rooms.length.toLocaleString()}) for the room settings script`))),
      h('table', { class: 'table compact-table responsive-table readiness-table' },
        h('caption', {}, shown.length < rooms.length
          ? `The first ${shown.length.toLocaleString()} of ${plural(rooms.length, 'room')}, the worst first`
          : `${plural(rooms.length, 'room')}, the worst first`),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'For the script')),
          h('th', { scope: 'col' }, 'Room'), h('th', { scope: 'col' }, 'Findings'))),
        h('tbody', {}, rows)));
    if (shown.length < rooms.length) {
      const more = h('button', { type: 'button', class: 'button' }, `Show all ${plural(rooms.length, 'room')}`);
      more.addEventListener('click', () => {
        state.showAll = true;
        // The keyboard goes on where the list grew: the first room that was not shown before.
        render({ force: true, focus: `readiness:${rooms[shown.length].email}` });
      });
      details.append(h('div', { class: 'form-actions' }, more));
    }
    return details;
  };

  // --- The room settings script ---------------------------------------------------------------
  const downloadsArea = h('div', { class: 'script-downloads' });
  function renderDownloads() {
    const report = state.report;
    const href = scriptHref(report.scripts && report.scripts.room_settings, `${base}/room-settings.ps1`);
    const link = (params) => `${href}?${new URLSearchParams(params).toString()}`;
    const calendars = state.calendarCount !== null ? state.calendarCount : Number(report.rooms_checked) || 0;
    const picks = [...state.picks].sort();
    const downloads = [];
    let note;
    if (calendars) {
      downloads.push(h('a', { class: 'button', href: link({ external: state.external }), download: true,
        dataset: { script: 'all', focusKey: 'readiness:script-all' } },
      `Download for ${calendars === 1 ? 'the 1 room' : `all ${plural(calendars, 'room')}`} (.ps1)`));
    }
    if (!calendars) note = 'Add rooms first: the script is for this account\'s rooms.';
    else if (!picks.length) note = 'For some rooms only, choose them in the list of rooms with findings.';
    else if (picks.join(',').length > SCRIPT_ROOMS_MAX_CHARS) {
      note = `${plural(picks.length, 'room')} chosen: more than one download can name. Choose fewer, or download the `
        + 'script for all rooms.';
    } else {
      downloads.push(h('a', { class: 'button', href: link({ rooms: picks.join(','), external: state.external }),
        download: true, dataset: { script: 'chosen', focusKey: 'readiness:script-chosen' } },
      `Download for the ${plural(picks.length, 'chosen room')} (.ps1)`));
    }
    downloadsArea.replaceChildren(
      downloads.length ? h('div', { class: 'form-actions' }, downloads) : '',
      note ? h('p', { class: 'help' }, note) : '');
  }

  const scriptsSection = () => {
    const scriptsHeadingId = uniqueId('readiness-scripts');
    const name = uniqueId('external');
    const radios = [['false', 'No: only invitations from inside the organisation'],
      ['true', 'Yes: invitations from outside the organisation too']].map(([value, label]) => {
      const id = uniqueId('external-choice');
      const radio = h('input', { id, type: 'radio', name, value, checked: state.external === value,
        dataset: { focusKey: `readiness:external-${value}` } });
      radio.addEventListener('change', () => {
        if (!radio.checked) return;
        state.external = value;
        renderDownloads();
      });
      return h('div', { class: 'check' }, radio, h('label', { for: id }, label));
    });
    renderDownloads();
    return h('section', { class: 'readiness-scripts', 'aria-labelledby': scriptsHeadingId },
      h('h3', { id: scriptsHeadingId }, 'Room settings script'),
      h('p', {}, 'Sets each room\'s calendar processing (Set-CalendarProcessing) as a booking integration needs: the '
        + 'room accepts invitations itself and keeps their subjects, bodies and privacy. Run it in PowerShell as an '
        + 'Exchange administrator.'),
      h('fieldset', { class: 'choice' }, h('legend', {}, 'Process invitations from outside the organisation?'), radios),
      downloadsArea);
  };

  // --- Rendering ------------------------------------------------------------------------------
  function render({ force = false, focus = null } = {}) {
    const report = state.report;
    if (!report) return;
    const key = `${state.reportKey}|${state.calendarCount}`;
    if (!force && key === state.renderedKey) {
      refreshRelativeTimes(content); // only "5 minutes ago" moves on
      return;
    }
    state.renderedKey = key;
    const active = document.activeElement;
    const focusKey = focus || (active && content.contains(active) && active.dataset ? active.dataset.focusKey : null);
    content.replaceChildren(accessBox(report), roomsSection(report), scriptsSection());
    content.setAttribute('aria-busy', 'false');
    if (focusKey) {
      const twin = Array.from(content.querySelectorAll('[data-focus-key]')).find((el) => el.dataset.focusKey === focusKey);
      if (twin) twin.focus();
    }
  }

  /** Put a report on the panel, unless a newer request is on its way. */
  const show = (report, sequence = null) => {
    if (isDisposed() || !report || (sequence !== null && sequence !== state.sequence)) return;
    state.report = report;
    state.reportKey = JSON.stringify(report);
    state.loadedAt = Date.now();
    if (state.refreshProblem) {
      state.refreshProblem = false;
      checkStatus.textContent = '';
    }
    render();
  };

  const load = async () => {
    if (isDisposed()) return;
    window.clearTimeout(state.timer);
    state.timer = null;
    state.sequence += 1;
    const sequence = state.sequence;
    try {
      show(await api('GET', base), sequence);
    } catch (error) {
      if (isDisposed() || sequence !== state.sequence) return;
      // A report already shown stays; the problem is said once, beside Re-check.
      if (state.report) {
        state.refreshProblem = true;
        checkStatus.textContent = `The readiness could not be refreshed: ${error.message}`;
      } else {
        content.replaceChildren(h('p', { class: 'error-text' }, `The readiness could not be loaded: ${error.message}`));
        content.setAttribute('aria-busy', 'false');
      }
    }
  };

  const setChecking = (value) => {
    state.checking = value;
    if (value) recheckButton.setAttribute('aria-disabled', 'true');
    else recheckButton.removeAttribute('aria-disabled');
    recheckButton.textContent = value ? 'Checking…' : 'Re-check';
    content.setAttribute('aria-busy', value ? 'true' : 'false');
  };

  const summary = (report) => {
    const finding = (report.findings || []).find((f) => !f.room);
    const checked = Number(report.rooms_checked) || 0;
    return `${finding ? finding.reason : 'Access unknown'}. ${plural(checked, 'room')} checked, `
      + `${(Number(report.rooms_with_findings) || 0).toLocaleString()} with findings.`;
  };

  recheckButton.addEventListener('click', async () => {
    if (state.checking) return;
    setChecking(true);
    window.clearTimeout(state.timer);
    state.timer = null;
    checkError.replaceChildren();
    state.refreshProblem = false;
    checkStatus.textContent = 'Checking the app\'s access and this account\'s rooms…';
    state.sequence += 1; // an older refresh answering now must not win over the check
    const sequence = state.sequence;
    try {
      const report = await api('POST', `${base}/check`);
      if (isDisposed()) return;
      show(report, sequence);
      checkStatus.textContent = `Checked just now: ${summary(report)}`;
    } catch (error) {
      if (isDisposed()) return;
      checkStatus.textContent = '';
      checkError.replaceChildren(h('p', { class: 'error-text' }, `The check failed: ${error.message}`));
    } finally {
      setChecking(false);
    }
  });

  /** The calendars table loaded: when the account's calendars changed, refresh the report soon. */
  const noteCalendars = (counts) => {
    if (!counts) return;
    const key = `${counts.total || 0}|${counts.connected || 0}`;
    const first = state.calendarsKey === null;
    state.calendarCount = counts.total || 0;
    if (key === state.calendarsKey) {
      render();
      return;
    }
    state.calendarsKey = key;
    render();
    if (first || state.timer !== null) return; // the first load fetches the report itself
    const wait = Math.max(0, state.loadedAt + GENTLE_MS - Date.now());
    state.timer = window.setTimeout(() => {
      state.timer = null;
      if (state.checking || isDisposed()) return;
      load();
    }, wait);
  };

  /** Discover checked rooms: the panel shows the same check's report, and says so. */
  const showChecked = (report) => {
    state.sequence += 1;
    show(report, state.sequence);
  };

  const dispose = () => {
    window.clearTimeout(state.timer);
    state.timer = null;
  };

  return { panel, load, show: showChecked, noteCalendars, dispose };
}
