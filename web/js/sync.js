// A connected calendar's booking sync in words: when it last synced, how many bookings its window
// holds, the next ones, whether a round is running, and why a sync or a booking write failed.
// Shared by the calendars table (one cell a row) and the Bookings dialog. Builds nodes only;
// it never fetches. `sync` is the API's summary: null for a calendar that was never synced.
import { h } from './dom.js';
import { dateRange, dayAndTimeRange, plural, relativeTimeElement } from './format.js';

function when(value) {
  return value ? [' ', relativeTimeElement(value)] : null;
}

/** "Syncing…" and "Last synced 2 minutes ago" (or "Not synced yet") on one line. */
export function syncStatusLine(sync) {
  return h('p', { class: 'sync-line' },
    sync.syncing ? [h('span', { class: 'badge badge-syncing' }, 'Syncing…'), ' '] : null,
    sync.last_synced_at ? ['Last synced ', relativeTimeElement(sync.last_synced_at)] : 'Not synced yet');
}

export function bookingsCountLine(sync) {
  const count = Number(sync.bookings_in_window) || 0;
  const window = sync.window ? dateRange(sync.window.start, sync.window.end) : '';
  return h('p', { class: 'sync-line sub' },
    `${plural(count, 'booking')} in the sync window${window ? ` (${window})` : ''}`);
}

/** Why the last sync round failed and why the last booking written to the room was refused. */
export function syncProblems(sync) {
  return [
    sync.last_error ? h('p', { class: 'sync-problem' },
      h('strong', {}, 'Sync error'), when(sync.error_at), ': ', sync.last_error) : null,
    sync.write_error ? h('p', { class: 'sync-problem' },
      h('strong', {}, 'Booking refused'), when(sync.write_error_at), ': ', sync.write_error) : null,
  ];
}

export function nextBookingsList(sync) {
  const upcoming = Array.isArray(sync.next_bookings) ? sync.next_bookings : [];
  if (!upcoming.length) return h('p', { class: 'sync-line sub' }, 'No upcoming bookings');
  return h('div', { class: 'next-bookings' },
    h('p', { class: 'sync-line sub' }, upcoming.length === 1 ? 'Next booking:' : 'Next bookings:'),
    h('ul', {}, upcoming.map((booking) => h('li', {},
      h('span', { class: 'booking-when' }, dayAndTimeRange(booking.start, booking.end)), ' ',
      h('span', { class: 'booking-subject' }, booking.subject || 'No subject')))));
}

/** The calendars table's Sync cell; nothing for a calendar that was never synced. */
export function syncCell(sync) {
  if (!sync) return null;
  return [syncStatusLine(sync), bookingsCountLine(sync), nextBookingsList(sync), syncProblems(sync)];
}
