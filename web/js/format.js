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
