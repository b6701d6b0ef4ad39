// Options for Adding Room: the .CSV template, Upload CSV (with validate-only) and its report,
// and Discover rooms from the tenant (pick, approve suggested links, add in one request; what the
// last readiness check found for each room, and Check these rooms).
import { api, seg } from './api.js';
import { announce, h, uniqueId } from './dom.js';
import { floorLabel, formatDateTime, plural, spaceLabel } from './format.js';
import { roomReadiness } from './readiness.js';

const IMPORT_POLL_MS = 1000;
const FINISHED = new Set(['completed', 'failed']);
const CHECK_CHUNK = 200; // rooms per readiness check: each call answers in seconds

function reportHref(accountId, record) {
  // Only our own API's addresses become links.
  const url = typeof record.report_url === 'string' ? record.report_url : '';
  if (url.startsWith('/api/')) return url;
  return `/api/accounts/${seg(accountId)}/imports/${seg(record.import_id)}/report.csv`;
}

/** The import's outcome: status, counts, rejected rows (first 200) and the full report's link. */
export function importReport(accountId, record) {
  const counts = record.counts || {};
  const rejected = Array.isArray(record.rejected) ? record.rejected : [];
  const running = !FINISHED.has(record.status);
  const title = record.validate_only ? 'Validation result (nothing was changed)' : 'Import result';
  let summary;
  if (running) summary = record.status === 'pending' ? 'Waiting to start…' : 'Importing…';
  else if (record.status === 'failed') summary = `The import failed: ${record.error || 'no reason was given'}`;
  else if (record.validate_only) {
    summary = `${plural(counts.rows || 0, 'row')} checked: ${(counts.rows || 0) - (counts.rejected || 0)} would be `
      + `applied, ${counts.rejected || 0} rejected.`;
  } else {
    summary = `${plural(counts.rows || 0, 'row')} read: ${counts.added || 0} added, ${counts.updated || 0} updated, `
      + `${counts.unchanged || 0} unchanged, ${counts.rejected || 0} rejected.`;
  }
  const section = h('section', { class: ['import-report', `import-${record.status}`], 'aria-live': 'polite',
    'aria-busy': running ? 'true' : 'false', dataset: { importStatus: record.status } },
  h('h4', {}, title),
  h('p', { class: record.status === 'failed' ? 'error-text' : 'import-summary' }, summary),
  record.uploaded_at ? h('p', { class: 'sub' }, `Uploaded by ${record.uploaded_by || 'someone'} at ${formatDateTime(record.uploaded_at)}`) : null);
  if (!running && rejected.length) {
    section.append(h('table', { class: 'table compact-table rejected-table' },
      h('caption', {}, `Rejected rows (${counts.rejected || rejected.length})`),
      h('thead', {}, h('tr', {},
        h('th', { scope: 'col' }, 'Line'), h('th', { scope: 'col' }, 'Email'), h('th', { scope: 'col' }, 'Reason'))),
      h('tbody', {}, rejected.map((row) => h('tr', {},
        h('td', { 'data-label': 'Line' }, String(row.line ?? '')),
        h('td', { 'data-label': 'Email' }, row.email || '—'),
        h('td', { 'data-label': 'Reason' }, row.reason || ''))))));
    if ((counts.rejected || 0) > rejected.length) {
      section.append(h('p', { class: 'sub' }, `Showing the first ${rejected.length} rejected rows.`));
    }
  }
  if (!running && record.import_id) {
    section.append(h('p', {}, h('a', { href: reportHref(accountId, record), download: `import-${record.import_id}.csv` },
      'Download the full report (.csv)')));
  }
  return section;
}

/**
 * The Options for Adding Room panel. `onChanged()` refreshes the calendars table;
 * `setImporting(bool)` tells the screen an import is running (it polls meanwhile);
 * `onReadinessChecked(report)` hands the account's readiness report after Check these rooms.
 */
export function optionsPanel(accountId, { onChanged, setImporting, isDisposed, onReadinessChecked }) {
  const fileId = uniqueId('csv-file');
  const validateId = uniqueId('validate-only');
  const fileInput = h('input', { id: fileId, type: 'file', accept: '.csv,text/csv', name: 'file' });
  const validateOnly = h('input', { id: validateId, type: 'checkbox', name: 'validate_only' });
  const uploadButton = h('button', { type: 'submit', class: 'button button-primary' }, 'Upload CSV');
  const uploadMessage = h('div', { class: 'form-message', role: 'status' });
  const reportArea = h('div', { class: 'import-area' });

  const showImport = (record) => {
    reportArea.replaceChildren(importReport(accountId, record));
  };

  const follow = async (importId) => {
    setImporting(true);
    try {
      for (;;) {
        if (isDisposed()) return;
        let record;
        try {
          record = await api('GET', `/api/accounts/${seg(accountId)}/imports/${seg(importId)}`);
        } catch (error) {
          reportArea.replaceChildren(h('p', { class: 'error-text', role: 'alert' },
            `The import's progress could not be read: ${error.message}`));
          return;
        }
        if (isDisposed()) return;
        showImport(record);
        if (FINISHED.has(record.status)) {
          announce(record.status === 'failed' ? 'The import failed.' : 'The import finished.');
          if (!record.validate_only) onChanged();
          return;
        }
        await new Promise((resolve) => { window.setTimeout(resolve, IMPORT_POLL_MS); });
      }
    } finally {
      setImporting(false);
    }
  };

  const uploadForm = h('form', { class: 'form upload-form' },
    h('div', { class: 'field' }, h('label', { for: fileId }, 'CSV file'), fileInput),
    h('div', { class: 'check' }, validateOnly,
      h('label', { for: validateId }, 'Validate only: check the file and report, change nothing')),
    h('div', { class: 'form-actions' }, uploadButton),
    uploadMessage);
  uploadForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    uploadMessage.replaceChildren();
    const file = fileInput.files && fileInput.files[0];
    if (!file) {
      uploadMessage.replaceChildren(h('p', { class: 'error-text' }, 'Choose a CSV file first.'));
      fileInput.focus();
      return;
    }
    uploadButton.disabled = true;
    try {
      const started = await api('POST', `/api/accounts/${seg(accountId)}/imports`, {
        file, contentType: 'text/csv', query: { validate_only: validateOnly.checked ? 'true' : 'false', connect: 'false' },
      });
      uploadMessage.replaceChildren(h('p', {}, `Uploaded ${file.name}. ${validateOnly.checked ? 'Checking' : 'Importing'} it now…`));
      showImport({ ...started, validate_only: validateOnly.checked, status: started.status || 'pending' });
      fileInput.value = '';
      await follow(started.import_id);
    } catch (error) {
      uploadMessage.replaceChildren(h('p', { class: 'error-text', role: 'alert' }, `Upload failed: ${error.message}`));
    } finally {
      uploadButton.disabled = false;
    }
  });

  // Discover rooms
  const discoverButton = h('button', { type: 'button', class: 'button' }, 'Discover rooms');
  const discoverArea = h('div', { class: 'discover-area' });
  const discover = async () => {
    discoverButton.disabled = true;
    discoverArea.replaceChildren(h('p', { class: 'loading' }, 'Asking Microsoft 365 for the tenant\'s rooms…'));
    try {
      const data = await api('GET', `/api/accounts/${seg(accountId)}/rooms`);
      discoverArea.replaceChildren(roomsPicker(data));
    } catch (error) {
      discoverArea.replaceChildren(h('p', { class: 'error-text', role: 'alert' }, `Rooms could not be discovered: ${error.message}`));
    } finally {
      discoverButton.disabled = false;
    }
  };
  discoverButton.addEventListener('click', discover);

  /** Check these rooms: the listed rooms' readiness, a few hundred per request, then each room's marker. */
  const readinessCheck = (rooms, choices) => {
    const helpId = uniqueId('check-rooms-help');
    // aria-disabled, not disabled, while it runs: a disabled button would drop the keyboard focus.
    const button = h('button', { type: 'button', class: 'button', 'aria-describedby': helpId }, 'Check these rooms');
    const status = h('p', { class: 'check-status', role: 'status' });
    const problem = h('div', { class: 'check-error', role: 'alert' });
    let running = false;
    const setRunning = (value) => {
      running = value;
      if (value) button.setAttribute('aria-disabled', 'true');
      else button.removeAttribute('aria-disabled');
      button.textContent = value ? 'Checking…' : 'Check these rooms';
    };
    button.addEventListener('click', async () => {
      if (running) return;
      setRunning(true);
      problem.replaceChildren();
      const emails = rooms.map((room) => room.email);
      let report = null;
      let checked = 0;
      try {
        for (let start = 0; start < emails.length; start += CHECK_CHUNK) {
          const chunk = emails.slice(start, start + CHECK_CHUNK);
          status.textContent = emails.length > CHECK_CHUNK
            ? `Checking rooms ${(start + 1).toLocaleString()}–${(start + chunk.length).toLocaleString()} of `
              + `${emails.length.toLocaleString()}…`
            : `Checking ${plural(emails.length, 'room')}…`;
          try {
            report = await api('POST', `/api/accounts/${seg(accountId)}/readiness/check`, { json: { rooms: chunk } });
          } catch (error) {
            if (isDisposed()) return;
            problem.replaceChildren(h('p', { class: 'error-text' }, checked
              ? `The check stopped after ${plural(checked, 'room')}: ${error.message}`
              : `The rooms could not be checked: ${error.message}`));
            break;
          }
          if (isDisposed()) return;
          checked += chunk.length;
        }
        if (report && onReadinessChecked) onReadinessChecked(report);
        if (!checked) {
          status.textContent = '';
          return;
        }
        // The check answers with the account's report (its calendars only); what it found for rooms not
        // added yet, Discover's own list says.
        let data;
        try {
          data = await api('GET', `/api/accounts/${seg(accountId)}/rooms`);
        } catch (error) {
          if (isDisposed()) return;
          status.textContent = '';
          problem.replaceChildren(h('p', { class: 'error-text' },
            `${plural(checked, 'room')} checked, but the findings could not be read back: ${error.message}`));
          return;
        }
        if (isDisposed()) return;
        const found = new Map((Array.isArray(data && data.items) ? data.items : []).map((item) => [item.email, item.readiness]));
        let withFindings = 0;
        for (const choice of choices) {
          if (!found.has(choice.room.email)) continue;
          choice.room.readiness = found.get(choice.room.email);
          if (Array.isArray(choice.room.readiness) && choice.room.readiness.length) withFindings += 1;
          choice.readinessCell.replaceChildren(roomReadiness(choice.room.readiness));
        }
        status.textContent = `Checked ${plural(checked, 'room')}: `
          + `${withFindings ? `${plural(withFindings, 'room')} with findings` : 'no problems found'}.`;
      } finally {
        setRunning(false);
      }
    });
    return h('div', { class: 'discover-check' },
      h('div', { class: 'form-actions' }, button),
      h('p', { id: helpId, class: 'help' }, 'Checks that each listed room is a room mailbox this app can reach; '
        + 'what it finds shows in the Readiness column.'),
      status, problem);
  };

  const roomsPicker = (data) => {
    const rooms = Array.isArray(data && data.items) ? data.items : [];
    const wrapper = h('div', { class: 'rooms-picker' });
    if (data && data.note) wrapper.append(h('p', { class: 'note' }, data.note));
    if (!rooms.length) {
      wrapper.append(h('p', { class: 'empty' }, 'No room mailboxes were found in this tenant.'));
      return wrapper;
    }
    const choices = [];
    const resultArea = h('div', { class: 'form-message', role: 'status' });
    const addButton = h('button', { type: 'button', class: 'button button-primary' }, 'Add selected rooms');
    const updateCount = () => {
      const count = choices.filter((c) => c.pick.checked).length;
      addButton.textContent = count ? `Add ${plural(count, 'selected room')}` : 'Add selected rooms';
      addButton.disabled = count === 0;
    };
    const selectAllId = uniqueId('select-all');
    const selectAll = h('input', { id: selectAllId, type: 'checkbox' });
    const rows = rooms.map((room) => {
      const pickId = uniqueId('room');
      const name = room.display_name || room.email;
      const pick = h('input', { id: pickId, type: 'checkbox', disabled: Boolean(room.added), dataset: { email: room.email } });
      pick.addEventListener('change', updateCount);
      let approve = null;
      let suggestion = '—';
      if (room.suggested_space) {
        const approveId = uniqueId('approve');
        const confidence = typeof room.suggested_space.confidence === 'number'
          ? ` (${Math.round(room.suggested_space.confidence * 100)}% match)` : '';
        approve = h('input', { id: approveId, type: 'checkbox', disabled: Boolean(room.added) });
        suggestion = h('div', { class: 'check' }, approve,
          h('label', { for: approveId }, `Link to ${spaceLabel(room.suggested_space)}${confidence}`));
      }
      const emailCell = h('td', { 'data-label': 'Email' }, room.email, room.added ? h('span', { class: 'sub' }, 'Already added') : null);
      const readinessCell = h('td', { class: 'readiness-cell', 'data-label': 'Readiness' }, roomReadiness(room.readiness));
      choices.push({ room, pick, approve, emailCell, readinessCell });
      const where = [room.building, room.floor !== null && room.floor !== undefined && room.floor !== '' ? floorLabel(room.floor) : null]
        .filter(Boolean).join(', ');
      return h('tr', {},
        h('td', { 'data-label': 'Add' }, h('div', { class: 'check' }, pick,
          h('label', { for: pickId }, h('span', { class: 'visually-hidden' }, 'Add '), name))),
        emailCell,
        h('td', { 'data-label': 'Where' }, where || '—', room.capacity ? h('span', { class: 'sub' }, `${room.capacity} seats`) : null),
        h('td', { 'data-label': 'Suggested space' }, suggestion),
        readinessCell);
    });
    selectAll.addEventListener('change', () => {
      for (const choice of choices) if (!choice.room.added) choice.pick.checked = selectAll.checked;
      updateCount();
    });
    addButton.addEventListener('click', async () => {
      const picked = choices.filter((c) => c.pick.checked && !c.room.added);
      if (!picked.length) return;
      addButton.disabled = true;
      const body = picked.map((c) => (c.approve && c.approve.checked
        ? { email: c.room.email, space_id: c.room.suggested_space.id } : { email: c.room.email }));
      try {
        const result = await api('POST', `/api/accounts/${seg(accountId)}/calendars/bulk`, { json: { rooms: body } });
        const failures = (result.results || []).filter((r) => !r.ok);
        resultArea.replaceChildren(h('p', { class: 'success-text' }, `Added ${plural(result.added || 0, 'room')}.`));
        if (failures.length) {
          resultArea.append(h('p', { class: 'error-text' }, `${plural(failures.length, 'room')} could not be added:`),
            h('ul', {}, failures.map((f) => h('li', {}, `${f.email || body[f.index]?.email || ''}: ${f.error}`))));
        }
        announce(`Added ${result.added || 0} rooms`);
        for (const c of picked) {
          const outcome = (result.results || []).find((r) => body[r.index] && body[r.index].email === c.room.email);
          if (outcome && outcome.ok) {
            c.room.added = true;
            c.pick.checked = false;
            c.pick.disabled = true;
            if (c.approve) c.approve.disabled = true;
            c.emailCell.append(h('span', { class: 'sub' }, 'Already added'));
          }
        }
        onChanged();
      } catch (error) {
        resultArea.replaceChildren(h('p', { class: 'error-text', role: 'alert' }, `The rooms could not be added: ${error.message}`));
      } finally {
        updateCount();
      }
    });
    updateCount();
    wrapper.append(
      readinessCheck(rooms, choices),
      h('div', { class: 'check select-all' }, selectAll, h('label', { for: selectAllId }, 'Select all rooms not yet added')),
      h('table', { class: 'table compact-table responsive-table rooms-table' },
        h('caption', {}, `${plural(rooms.length, 'room')} found in the tenant`),
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, 'Room'), h('th', { scope: 'col' }, 'Email'),
          h('th', { scope: 'col' }, 'Where'), h('th', { scope: 'col' }, 'Suggested space'),
          h('th', { scope: 'col' }, 'Readiness'))),
        h('tbody', {}, rows)),
      h('div', { class: 'form-actions' }, addButton),
      resultArea);
    return wrapper;
  };

  const panel = h('section', { class: 'panel options-panel', 'aria-labelledby': 'options-heading' },
    h('h2', { id: 'options-heading' }, 'Options for Adding Room'),
    h('div', { class: 'options-grid' },
      h('div', { class: 'option' },
        h('h3', {}, 'Upload a CSV'),
        h('p', {}, 'One room per row with the columns email and roomID (the space number). Start from the ',
          h('a', { href: '/api/calendars/template.csv', download: 'csvTemplate.csv' }, '.CSV template'), '.'),
        uploadForm),
      h('div', { class: 'option' },
        h('h3', {}, 'Discover rooms'),
        h('p', {}, 'List the room mailboxes of this tenant from Microsoft 365, pick the ones to add, and approve the '
          + 'suggested space links.'),
        discoverButton)),
    reportArea,
    discoverArea);

  // An import that was still running when the page was opened: follow it too.
  const resumeRunningImport = async () => {
    try {
      const data = await api('GET', `/api/accounts/${seg(accountId)}/imports`);
      const items = Array.isArray(data && data.items) ? data.items : [];
      const running = items.find((item) => !FINISHED.has(item.status));
      if (running && !isDisposed()) {
        showImport(running);
        await follow(running.import_id);
      }
    } catch {
      // No imports endpoint or no imports: nothing to resume.
    }
  };
  return { panel, resumeRunningImport };
}
