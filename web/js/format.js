// Turning server values into words for people: times, counts, statuses.
import { h } from './dom.js';

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: 'short' });

function parse(value) {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** A <time> element with a readable local date and time, or an em dash. */
export function timeElement(value, empty = '—') {
  const date = parse(value);
  if (!date) return document.createTextNode(empty);
  return h('time', { datetime: date.toISOString(), title: date.toISOString() }, dateTime.format(date));
}

export function formatDateTime(value) {
  const date = parse(value);
  return date ? dateTime.format(date) : '';
}

/** "10:45 (in about 12 minutes)" for a time that is due soon; the full date otherwise. */
export function formatDue(value) {
  const date = parse(value);
  if (!date) return '';
  const minutes = Math.round((date.getTime() - Date.now()) / 60000);
  const sameDay = new Date().toDateString() === date.toDateString();
  const when = sameDay ? timeOnly.format(date) : dateTime.format(date);
  if (minutes <= 0) return `${when} (due now)`;
  if (minutes === 1) return `${when} (in about a minute)`;
  if (minutes < 120) return `${when} (in about ${minutes} minutes)`;
  return when;
}

export function plural(count, one, many) {
  return `${count.toLocaleString()} ${count === 1 ? one : many || `${one}s`}`;
}

export const CALENDAR_STATUS_LABELS = {
  added: 'Added',
  queued: 'Queued',
  connecting: 'Connecting',
  connected: 'Connected',
  failed: 'Failed',
};

/** A status badge: coloured, but the words carry the meaning (never colour alone). */
export function statusBadge(status, label) {
  return h('span', { class: ['badge', `badge-${String(status || 'unknown').replace(/[^a-z_]/g, '')}`] },
    label || CALENDAR_STATUS_LABELS[status] || String(status || 'Unknown'));
}

export function spaceLabel(space) {
  if (!space) return '';
  return [space.number, space.name].filter(Boolean).join(' · ');
}

/** "Floor 3" for a bare number; a named floor ("Level 1", "Ground") as it is. */
export function floorLabel(floor) {
  const text = String(floor);
  return /^-?\d+$/.test(text) ? `Floor ${text}` : text;
}

export function spaceWhere(space) {
  if (!space) return '';
  const parts = [];
  if (space.building_name || space.building_id) parts.push(space.building_name || space.building_id);
  if (space.floor !== undefined && space.floor !== null && space.floor !== '') parts.push(floorLabel(space.floor));
  if (space.capacity) parts.push(`${space.capacity} seats`);
  return parts.join(', ');
}

// --- Relative times and booking times (the browser's own time zone) ----------------------------

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const shortDay = new Intl.DateTimeFormat(undefined, { weekday: 'short', day: 'numeric', month: 'short' });
const longDay = new Intl.DateTimeFormat(undefined, { weekday: 'long', day: 'numeric', month: 'long' });
const shortDayUtc = new Intl.DateTimeFormat(undefined, { weekday: 'short', day: 'numeric', month: 'short', timeZone: 'UTC' });
const dayMonth = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
const dayMonthYear = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', year: 'numeric' });
const DAY_MS = 24 * 60 * 60 * 1000;

/** "just now", "5 minutes ago", "yesterday", "in 2 hours": how long ago (or until) a moment is. */
export function relativeTime(value, now = Date.now()) {
  const date = parse(value);
  if (!date) return '';
  const seconds = (date.getTime() - now) / 1000;
  const size = Math.abs(seconds);
  // A server clock a few seconds ahead must not read as "in 3 seconds".
  if (size < 60) return 'just now';
  if (size < 3600) return relative.format(Math.round(seconds / 60), 'minute');
  if (size < DAY_MS / 1000) return relative.format(Math.round(seconds / 3600), 'hour');
  return relative.format(Math.round(seconds / (DAY_MS / 1000)), 'day');
}

/** A <time> saying how long ago, with the full local date and time as its title; kept current
 * by refreshRelativeTimes without rebuilding what holds it. */
export function relativeTimeElement(value, empty = '—') {
  const date = parse(value);
  if (!date) return document.createTextNode(empty);
  return h('time', { datetime: date.toISOString(), title: dateTime.format(date), dataset: { relative: 'true' } },
    relativeTime(date));
}

/** Bring every relative time under `root` up to date (text only: focus and scroll stay). */
export function refreshRelativeTimes(root) {
  const now = Date.now();
  for (const element of root.querySelectorAll('time[data-relative]')) {
    const text = relativeTime(element.getAttribute('datetime'), now);
    if (text && element.textContent !== text) element.textContent = text;
  }
}

export function startOfLocalDay(value = new Date()) {
  const date = new Date(value);
  date.setHours(0, 0, 0, 0);
  return date;
}

/** "2025-06-03" of a moment in the browser's time zone (or in UTC, for an all-day booking's date). */
export function dayKey(date, utc = false) {
  const parts = utc
    ? [date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate()]
    : [date.getFullYear(), date.getMonth() + 1, date.getDate()];
  return parts.map((part, index) => String(part).padStart(index ? 2 : 4, '0')).join('-');
}

function relativeDayName(date) {
  const key = dayKey(date);
  const today = startOfLocalDay();
  if (key === dayKey(today)) return 'Today';
  const tomorrow = new Date(today);
  tomorrow.setDate(tomorrow.getDate() + 1);
  if (key === dayKey(tomorrow)) return 'Tomorrow';
  return null;
}

/** "Today, Tuesday 3 June", "Tomorrow, …", "Thursday 5 June": a day's heading. */
export function dayHeading(date) {
  const name = relativeDayName(date);
  return name ? `${name}, ${longDay.format(date)}` : longDay.format(date);
}

/** "14:00–15:00" in local time; "23:00 – Wed 4 Jun, 01:00" when it ends on another day. */
export function timeRange(start, end) {
  const from = parse(start);
  const to = parse(end);
  if (!from) return '';
  if (!to) return timeOnly.format(from);
  const endsAtNextMidnight = to.getTime() - from.getTime() <= DAY_MS
    && to.getHours() === 0 && to.getMinutes() === 0 && to.getDate() !== from.getDate();
  if (from.toDateString() === to.toDateString() || endsAtNextMidnight) {
    return `${timeOnly.format(from)}–${timeOnly.format(to)}`;
  }
  return `${timeOnly.format(from)} – ${shortDay.format(to)}, ${timeOnly.format(to)}`;
}

/** "Today 14:00–15:00", "Tomorrow 09:00–09:15", "Thu 5 Jun 10:00–11:00". */
export function dayAndTimeRange(start, end) {
  const from = parse(start);
  if (!from) return '';
  return `${relativeDayName(from) || shortDay.format(from)} ${timeRange(start, end)}`;
}

/** The date an all-day booking's start or end stands for, as a UTC midnight. It is midnight in
 * the event's own zone, which the API gives as a UTC moment: the nearest UTC midnight is that date
 * for every zone from UTC-11 to UTC+11, whether Graph answered at UTC midnight or converted. */
export function allDayDate(value) {
  const date = parse(value);
  return date ? new Date(Math.round(date.getTime() / DAY_MS) * DAY_MS) : null;
}

/** "All day", or "All day, 3 days (until Thu 5 Jun)". */
export function allDayLabel(start, end) {
  const from = allDayDate(start);
  const to = allDayDate(end);
  const days = from && to ? Math.max(1, Math.round((to.getTime() - from.getTime()) / DAY_MS)) : 1;
  if (days === 1) return 'All day';
  return `All day, ${days} days (until ${shortDayUtc.format(new Date(to.getTime() - DAY_MS))})`;
}

/** "2 Jun – 29 Nov" (with the year when it is not this year's). */
export function dateRange(start, end) {
  const from = parse(start);
  const to = parse(end);
  if (!from || !to) return '';
  const year = new Date().getFullYear();
  const pick = (date) => (date.getFullYear() === year ? dayMonth : dayMonthYear).format(date);
  return `${pick(from)} – ${pick(to)}`;
}

export function localTimeZoneName() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'your local time zone';
}
