// The Bookings dialog of one connected room: its bookings from the start of today to 7 days on,
// grouped by day in the browser's time zone, the room's sync state, and the connection test.
// While open it refreshes on its own without moving focus or scroll (a refresh that changed nothing
// leaves the list alone); closing it stops every timer, and a test booking the connection test
// left behind is cancelled (or the page says it is still there, and when).
import { api, seg } from './api.js';
import { h, uniqueId } from './dom.js';
import { openDialog } from './dialogs.js';
import {
  CALENDAR_STATUS_LABELS, allDayDate, allDayLabel, dayHeading, dayKey, localTimeZoneName, plural,
  refreshRelativeTimes, startOfLocalDay, timeRange,
} from './format.js';
import { showNotice } from './notices.js';
import { bookingsCountLine, syncProblems, syncStatusLine } from './sync.js';
import { connectionTest } from './connection-test.js';

const REFRESH_MS = 10000;
const DAYS = 8; // today and the next 7 days

function shownRange(now = new Date()) {
  const start = startOfLocalDay(now);
  const end = new Date(start);
  end.setDate(end.getDate() + DAYS); // local midnights: a day with a DST change is still one day
  return { start, end };
}

function organizerText(organizer) {
  const { name, email } = organizer || {};
  if (name && email && name.toLowerCase() !== email.toLowerCase()) return `${name} (${email})`;
  return name || email || '';
}

function bookingItem(booking) {
  const markers = [];
  if (booking.created_by_connector) markers.push(h('span', { class: 'marker marker-here' }, 'Made here'));
  if (booking.created_by_connector && !booking.seen_by_sync) {
    markers.push(h('span', { class: 'marker' }, 'Not yet read back by sync'));
  }
  if (booking.type === 'occurrence' || booking.type === 'exception') markers.push(h('span', { class: 'marker' }, 'Recurring'));
  if (booking.is_cancelled) markers.push(h('span', { class: 'marker marker-cancelled' }, 'Cancelled'));
  const organizer = organizerText(booking.organizer);
  return h('li', { class: ['booking', booking.is_cancelled ? 'booking-cancelled' : null], dataset: { bookingId: booking.id } },
    h('span', { class: 'booking-when' },
      booking.is_all_day ? allDayLabel(booking.start, booking.end) : timeRange(booking.start, booking.end)),
    h('span', { class: 'booking-what' },
      h('span', { class: 'booking-subject' }, booking.subject || 'No subject'),
      organizer ? h('span', { class: 'sub' }, `Organizer: ${organizer}`) : null,
      markers.length ? h('span', { class: 'markers' }, markers) : null));
}

/** The shown days, each with its bookings: a timed booking under its local start day, an all-day
 * one under its own date, one that began before today under today. */
function byDay(items, range) {
  const days = [];
  for (let index = 0; index < DAYS; index += 1) {
    const date = new Date(range.start);
    date.setDate(date.getDate() + index);
    days.push({ date, key: dayKey(date), items: [] });
  }
  for (const booking of items) {
    const start = new Date(booking.start);
    if (Number.isNaN(start.getTime())) continue;
    const key = booking.is_all_day ? dayKey(allDayDate(booking.start), true) : dayKey(start);
    const day = days.find((candidate) => candidate.key === key) || (key < days[0].key ? days[0] : null);
    if (day) day.items.push(booking);
  }
  for (const day of days) day.items.sort((a, b) => Number(b.is_all_day) - Number(a.is_all_day));
  return days;
}

function dayList(items, range) {
  return h('div', { class: 'booking-days' }, byDay(items, range).map((day) => h('div', { class: 'booking-day' },
    h('h4', {}, dayHeading(day.date),
      day.items.length ? h('span', { class: 'day-count' }, ` · ${plural(day.items.length, 'booking')}`) : null),
    day.items.length
      ? h('ul', { class: 'booking-list' }, day.items.map(bookingItem))
      : h('p', { class: 'empty' }, 'No bookings'))));
}

/** Open the dialog for a connected `calendar` of `accountId`; `onClosed()` runs after it closed. */
export function openBookingsDialog(accountId, calendar, { onClosed } = {}) {
  const path = `/api/accounts/${seg(accountId)}/calendars/${seg(calendar.email)}`;
  let closed = false;
  let timer = null;
  let bookingsKey = '';
  let syncKey = '';
  let loadedAt = 0;
  let dialogElement = null;
  const syncArea = h('div', { class: 'sync-summary' });
  const listArea = h('div', { class: 'bookings-area', 'aria-busy': 'true' }, h('p', { class: 'loading' }, 'Loading bookings…'));
  const refreshProblem = h('p', { class: 'error-text refresh-problem' });

  const keepingScroll = (change) => {
    const top = dialogElement ? dialogElement.scrollTop : 0;
    change();
    if (dialogElement) dialogElement.scrollTop = top;
  };

  const loadBookings = async () => {
    const range = shownRange();
    let data;
    try {
      data = await api('GET', `${path}/bookings`, { query: { start: range.start.toISOString(), end: range.end.toISOString() } });
    } catch (error) {
      if (!closed) {
        if (bookingsKey) refreshProblem.textContent = `The bookings could not be refreshed: ${error.message}`;
        else listArea.replaceChildren(h('p', { class: 'error-text' }, `The bookings could not be loaded: ${error.message}`));
        listArea.setAttribute('aria-busy', 'false');
      }
      throw error;
    }
    if (closed) return data;
    loadedAt = Date.now();
    refreshProblem.textContent = '';
    const items = Array.isArray(data && data.items) ? data.items : [];
    const key = JSON.stringify([range.start.getTime(), items]);
    if (key !== bookingsKey) {
      bookingsKey = key;
      keepingScroll(() => listArea.replaceChildren(dayList(items, range)));
    }
    listArea.setAttribute('aria-busy', 'false');
    return data;
  };

  const loadSync = async () => {
    const current = await api('GET', path);
    if (closed) return current && current.sync;
    const sync = current && current.sync;
    const key = JSON.stringify([current && current.status, sync]);
    if (key !== syncKey) {
      syncKey = key;
      const lines = [];
      if (current.status !== 'connected') {
        const status = CALENDAR_STATUS_LABELS[current.status] || String(current.status);
        lines.push(h('p', { class: 'warning-text' }, `This calendar is ${status.toLowerCase()} now: its bookings `
          + 'are synced only while it is connected.'));
      }
      if (sync) lines.push(syncStatusLine(sync), bookingsCountLine(sync), syncProblems(sync));
      else lines.push(h('p', { class: 'sync-line' }, 'Not synced yet: the first sync round has not finished.'));
      keepingScroll(() => syncArea.replaceChildren(...lines.flat().filter(Boolean)));
    }
    return sync;
  };

  const test = connectionTest({ path, email: calendar.email, loadBookings, loadSync });

  const refresh = async () => {
    if (closed) return;
    // The connection test polls the bookings itself while it waits: no second request then.
    const bookingsDue = Date.now() - loadedAt >= REFRESH_MS / 2;
    await Promise.allSettled([
      loadSync().catch((error) => {
        if (!closed && !syncKey) {
          syncArea.replaceChildren(h('p', { class: 'error-text' }, `The sync state could not be loaded: ${error.message}`));
        }
        throw error;
      }),
      bookingsDue ? loadBookings() : null,
    ]);
    if (closed) return;
    if (dialogElement) refreshRelativeTimes(dialogElement);
    timer = window.setTimeout(refresh, REFRESH_MS);
  };

  openDialog({
    title: `Bookings: ${calendar.email}`,
    description: `Today and the next 7 days, in your time zone (${localTimeZoneName()}). This list refreshes on its own.`,
    className: 'dialog-wide dialog-bookings',
    // The dialog is long: start at its title, so a screen reader reads it from the top.
    initialFocus: (dialog) => {
      const heading = dialog.querySelector('.dialog-title');
      heading.setAttribute('tabindex', '-1');
      return heading;
    },
    onClose: () => {
      closed = true;
      window.clearTimeout(timer);
      test.stop().then((notice) => {
        if (notice) showNotice(notice);
        if (onClosed) onClosed();
      });
    },
    build: ({ dialog, body, footer, close }) => {
      dialogElement = dialog;
      const daysHeadingId = uniqueId('bookings-days');
      body.append(
        h('section', { class: 'dialog-section', 'aria-label': 'Sync' }, syncArea),
        test.section,
        h('section', { class: 'dialog-section', 'aria-labelledby': daysHeadingId },
          h('h3', { id: daysHeadingId }, 'Today and the next 7 days'), refreshProblem, listArea));
      footer.append(h('button', { type: 'button', class: 'button', onclick: () => close('close') }, 'Close'));
    },
  });
  refresh();
}
