// The connection test of the Bookings dialog: one click proves both directions of a room's sync.
// It books the next free 15 minutes through Microsoft Graph (this app writes to the room), waits
// until a sync round read that booking back from Graph (Graph's change notification reached this
// app), then cancels it. Each step says in words where it stands; a failure names its step with the
// API's reason. `stop()` (the dialog closed) ends the waiting and cancels a test booking it made,
// answering with what the page should tell the admin.
import { api, seg } from './api.js';
import { h, uniqueId } from './dom.js';
import { dayAndTimeRange } from './format.js';

const SYNC_WAIT_MS = 90000;
const SYNC_POLL_MS = 2000;
const STEPS = [
  { key: 'book', label: 'Booking the next free 15 minutes on the room\'s calendar' },
  { key: 'sync', label: 'Waiting for it to come back through sync' },
  { key: 'cancel', label: 'Cancelling it' },
  { key: 'done', label: 'Done: both directions work' },
];
// Words carry the state; the symbol only repeats it for sighted readers.
const STATES = {
  waiting: { word: 'Not started', symbol: '○' },
  running: { word: 'In progress', symbol: '◔' },
  done: { word: 'Done', symbol: '✓' },
  failed: { word: 'Failed', symbol: '✗' },
  skipped: { word: 'Not run', symbol: '–' },
};

function reason(error) {
  const message = error && error.message ? error.message : String(error);
  if (error && error.retryAfter && !/try again/i.test(message)) {
    return `${message} Try again in ${error.retryAfter} seconds.`;
  }
  return message;
}

const pause = (ms) => new Promise((resolve) => { window.setTimeout(resolve, ms); });

/**
 * The test's section for the dialog. `path` is the calendar's API path; `loadBookings()` fetches
 * (and shows) the dialog's bookings and returns the API's answer; `loadSync()` refreshes the sync
 * state shown above and returns it.
 */
export function connectionTest({ path, email, loadBookings, loadSync }) {
  let running = false;
  let stopped = false;
  let testBooking = null; // made by the test and not cancelled yet
  let posting = null;
  let cancelling = null;

  const explainId = uniqueId('test-explain');
  // aria-disabled, not disabled, while it runs: a disabled button would drop the keyboard focus.
  const button = h('button', { type: 'button', class: 'button button-primary', 'aria-describedby': explainId },
    'Test booking');
  const setRunning = (value) => {
    running = value;
    if (value) button.setAttribute('aria-disabled', 'true');
    else button.removeAttribute('aria-disabled');
  };
  const progress = h('p', { class: 'test-progress', role: 'status' });
  const failure = h('div', { role: 'alert', class: 'test-failure' });
  const steps = new Map(STEPS.map((step, index) => {
    const symbol = h('span', { class: 'step-symbol', 'aria-hidden': 'true' });
    const word = h('span', { class: 'step-state' });
    const detail = h('p', { class: 'step-detail' });
    const item = h('li', { class: 'test-step', dataset: { step: step.key } },
      symbol, h('span', { class: 'step-text' }, h('span', { class: 'step-label' }, step.label), ' ', word, detail));
    return [step.key, { ...step, number: index + 1, item, symbol, word, detail }];
  }));

  const setStep = (key, state, text) => {
    const step = steps.get(key);
    step.item.dataset.state = state;
    step.symbol.textContent = STATES[state].symbol;
    step.word.textContent = STATES[state].word;
    if (text !== undefined) step.detail.textContent = text;
    const words = `Step ${step.number} of ${STEPS.length}: ${step.label}…`;
    // The same words again would be read out again: only a new step is announced.
    if (state === 'running' && progress.textContent !== words) progress.textContent = words;
  };
  const reset = () => {
    for (const key of steps.keys()) setStep(key, 'waiting', '');
    progress.textContent = '';
    failure.replaceChildren();
  };
  // The failing step says "Failed"; the alert under the steps names it with the reason, once.
  const fail = (key, message) => {
    const step = steps.get(key);
    setStep(key, 'failed', '');
    for (const other of steps.values()) {
      if (other.number > step.number && other.item.dataset.state === 'waiting') setStep(other.key, 'skipped');
    }
    progress.textContent = '';
    failure.replaceChildren(h('p', { class: 'error-text' },
      h('strong', {}, `The test failed at step ${step.number}, “${step.label}”: `), message));
  };

  const cancelTestBooking = () => {
    if (!cancelling) {
      cancelling = api('DELETE', `${path}/bookings/${seg(testBooking.id)}`)
        .catch((error) => {
          if (error.status === 404) return null; // already gone from the room's calendar
          throw error;
        })
        .then(() => { testBooking = null; })
        .finally(() => { cancelling = null; });
    }
    return cancelling;
  };

  /** Poll the bookings until the sync has read the test booking back; {ok} or {ok: false, message}. */
  const waitForSync = async (booking) => {
    const started = Date.now();
    let lastProblem = '';
    while (!stopped) {
      try {
        const data = await loadBookings();
        const items = data && Array.isArray(data.items) ? data.items : [];
        const found = items.find((item) => item.id === booking.id);
        if (!found) {
          return { ok: false, message: 'The test booking is no longer on the room\'s calendar: someone removed it '
            + 'before the sync read it back. Run the test again.' };
        }
        if (found.seen_by_sync) return { ok: true, seconds: Math.round((Date.now() - started) / 1000) };
        lastProblem = '';
      } catch (error) {
        lastProblem = reason(error); // a failed refresh is tried again until the deadline
      }
      const waited = Date.now() - started;
      if (waited >= SYNC_WAIT_MS) break;
      setStep('sync', 'running', `Waiting for Microsoft Graph's change notification and the sync round it starts `
        + `(${Math.round(waited / 1000)} s of at most ${SYNC_WAIT_MS / 1000} s).`);
      await pause(SYNC_POLL_MS);
    }
    if (stopped) return { ok: false, message: 'Stopped.' };
    let syncError = '';
    try {
      const sync = await loadSync();
      syncError = sync && sync.last_error ? ` The calendar's last sync error: ${sync.last_error}` : '';
    } catch {
      syncError = '';
    }
    return {
      ok: false,
      message: `The booking did not come back through sync within ${SYNC_WAIT_MS / 1000} seconds. `
        + 'Microsoft Graph\'s change notifications must reach this app at its PUBLIC_BASE_URL (a public https '
        + 'address): check that setting, and the calendar\'s sync error above if it shows one.'
        + (syncError || (lastProblem ? ` The bookings could not be read: ${lastProblem}` : '')),
    };
  };

  const run = async () => {
    if (running) return;
    setRunning(true);
    stopped = false;
    reset();
    try {
      setStep('book', 'running', '');
      posting = api('POST', `${path}/test-booking`).then((booking) => { testBooking = booking; return booking; });
      let booking;
      try {
        booking = await posting;
      } catch (error) {
        fail('book', reason(error));
        loadSync().catch(() => null); // a refused write shows as the calendar's booking error too
        return;
      } finally {
        posting = null;
      }
      if (stopped) return;
      const slot = dayAndTimeRange(booking.start, booking.end);
      setStep('book', 'done', `Booked ${slot} as “${booking.subject || 'Connection test'}”.`);

      setStep('sync', 'running', 'Waiting for Microsoft Graph\'s change notification and the sync round it starts.');
      const seen = await waitForSync(booking);
      if (stopped) return;
      if (!seen.ok) {
        fail('sync', seen.message);
        await cleanUpAfterFailure(slot);
        return;
      }
      setStep('sync', 'done', `Read back from Microsoft Graph by the sync after ${seen.seconds} s.`);

      setStep('cancel', 'running', '');
      try {
        await cancelTestBooking();
      } catch (error) {
        if (stopped) return;
        fail('cancel', `${reason(error)} The test booking is still on the room's calendar (${slot}).`);
        return;
      }
      if (stopped) return;
      setStep('cancel', 'done', 'Cancelled: the room is free again.');
      loadBookings().catch(() => null);
      setStep('done', 'done', 'This app writes bookings to the room\'s calendar, and changes made there reach '
        + 'this app through sync.');
      progress.textContent = 'The connection test passed: bookings reach the room\'s calendar and come back through sync.';
    } finally {
      setRunning(false);
    }
  };

  // After the sync step failed, the booking it made should not stay on the room's calendar.
  const cleanUpAfterFailure = async (slot) => {
    if (!testBooking) return;
    try {
      await cancelTestBooking();
      setStep('cancel', 'done', 'The test booking was cancelled, so the room is free again.');
      loadBookings().catch(() => null);
    } catch (error) {
      setStep('cancel', 'failed', `The test booking could not be cancelled (${reason(error)}): it is still on the `
        + `room's calendar (${slot}).`);
    }
  };

  button.addEventListener('click', run);
  reset();

  const section = h('section', { class: 'dialog-section connection-test', 'aria-labelledby': `${explainId}-heading` },
    h('h3', { id: `${explainId}-heading` }, 'Connection test'),
    h('p', { id: explainId }, 'Books the next free 15 minutes on the room\'s calendar as “Connection test”, '
      + 'waits until the sync reads it back from Microsoft 365, then cancels it: proof that both directions work.'),
    h('div', { class: 'form-actions' }, button),
    h('ol', { class: 'test-steps', 'aria-label': 'Connection test steps' }, [...steps.values()].map((step) => step.item)),
    progress, failure);

  /** The dialog closed: stop, and cancel a test booking still on the room's calendar. */
  const stop = async () => {
    stopped = true;
    if (posting) await posting.catch(() => null);
    if (cancelling) await cancelling.catch(() => null);
    if (!testBooking) return null;
    const slot = dayAndTimeRange(testBooking.start, testBooking.end);
    try {
      await cancelTestBooking();
      return { kind: 'info', id: 'connection-test', title: `The connection test of ${email} was stopped.`,
        lines: [`Its test booking (${slot}) was cancelled, so the room is free again.`] };
    } catch (error) {
      return { kind: 'warning', id: 'connection-test', title: `A test booking is still on the calendar of ${email}.`,
        lines: [`“Connection test”, ${slot}, could not be cancelled: ${reason(error)}`,
          'Remove it from the room\'s calendar in Outlook, or open Bookings and run the test again later.'] };
    }
  };

  return { section, stop };
}
