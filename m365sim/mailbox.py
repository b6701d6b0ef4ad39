"""One mailbox's calendar: its stored events (singles and series masters, each change a new
immutable version), the transactionId index, and a change log with a sequence number per
mailbox that delta rounds read.

Owns create, update (an occurrence becomes an exception), delete (an occurrence is cancelled),
cancel, and which events changed between two sequence numbers. Work is proportional to the
mailbox or to what changed, under the mailbox's own lock (never `SimState.lock`). It must never
apply tenant policy (knobs are the callers'), render JSON, or call out.
"""

from __future__ import annotations

import bisect
import datetime as dt
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from m365sim.events import (
    EventFields,
    EventInvalid,
    ExceptionVersion,
    Occurrence,
    StoredEvent,
    as_occurrence,
    find_occurrence,
    new_change_key,
    new_event_id,
    new_ical_uid,
    occurrence_id,
    occurrences,
    parse_event_id,
    read_fields,
    read_recurrence,
)
from m365sim.recurrence import Recurrence
from m365sim.timezones import resolve_zone

# The change log keeps this many records per mailbox; a delta token older than what is kept
# answers 410 (Graph, too, forgets sync state: the client starts a full round).
CHANGE_LOG_LIMIT = 20_000
CHANGE_LOG_TRIM = 5_000

# Maps the fields a write asks for to the fields the mailbox stores (a room's processing rules).
Rewrite = Callable[[EventFields], EventFields]


class SyncStateGone(Exception):
    """A delta or skip token this mailbox can no longer answer (expired, trimmed, unknown)."""


@dataclass(frozen=True)
class Change:
    """One committed write, as a change notification names it."""

    change_type: str  # created, updated, deleted
    item_id: str
    change_key: str


@dataclass(frozen=True)
class NewEvent:
    fields: EventFields
    recurrence: Recurrence | None
    organizer: dict[str, str]
    is_organizer: bool
    response: str
    transaction_id: str | None = None


@dataclass(frozen=True)
class _Record:
    seq: int
    event_id: str
    before: StoredEvent | None  # the version before this change; None when it created the event


def not_found() -> EventInvalid:
    return EventInvalid("ErrorItemNotFound", "The specified object was not found in the store.", 404)


class Mailbox:
    def __init__(self, user_id: str, address: str, display_name: str) -> None:
        self.user_id, self.address, self.display_name = user_id, address, display_name
        self.lock = threading.Lock()
        self._events: dict[str, StoredEvent] = {}
        self._by_transaction: dict[str, str] = {}
        self.seq = 0
        self._log: list[_Record] = []
        self._log_seqs: list[int] = []
        self._log_floor = 0
        # Every delta and skip token carries the generation it was issued in; a new generation
        # (control API `delta/expire`) makes all earlier tokens answer 410.
        self.generation = os.urandom(6).hex()

    # -- reads ----------------------------------------------------------------------------------

    def view(self, lo: dt.datetime, hi: dt.datetime) -> list[Occurrence]:
        """Instances overlapping [lo, hi), sorted by start (calendarView)."""
        with self.lock:
            events = list(self._events.values())
        found = [item for event in events for item in occurrences(event, lo, hi)]
        found.sort(key=lambda item: (item.fields.start, item.id))
        return found

    def stored(self) -> list[StoredEvent]:
        """Singles and masters, oldest first (`/events`)."""
        with self.lock:
            return sorted(self._events.values(), key=lambda event: (event.created, event.id))

    def lookup(self, item_id: str) -> Occurrence:
        """A single, master, occurrence or exception by id; EventInvalid when malformed or absent."""
        with self.lock:
            event, original = self._locate(item_id)
        if original is None:
            return as_occurrence(event)
        found = find_occurrence(event, original)
        if found is None:
            raise not_found()
        return found

    def current(self, event_ids: Iterable[str]) -> dict[str, StoredEvent | None]:
        with self.lock:
            return {event_id: self._events.get(event_id) for event_id in event_ids}

    # -- writes ---------------------------------------------------------------------------------

    def create(self, new: NewEvent, now: float | None = None) -> tuple[StoredEvent, Change | None]:
        """Store a new event; with a transactionId already used by a live event of this mailbox,
        that event and no change (a retried create)."""
        stamp = time.time() if now is None else now
        with self.lock:
            if new.transaction_id:
                existing = self._events.get(self._by_transaction.get(new.transaction_id, ""))
                if existing is not None:
                    return existing, None
            event = StoredEvent(id=new_event_id(), ical_uid=new_ical_uid(), created=stamp, modified=stamp,
                                change_key=new_change_key(), fields=new.fields, recurrence=new.recurrence,
                                organizer=dict(new.organizer), is_organizer=new.is_organizer, response=new.response,
                                transaction_id=new.transaction_id or None)
            self._events[event.id] = event
            if new.transaction_id:
                self._by_transaction[new.transaction_id] = event.id
            self._commit(event.id, None)
        return event, Change("created", event.id, event.change_key)

    def create_many(self, batch: list[NewEvent]) -> list[Change]:
        now = time.time()
        changes = [self.create(new, now)[1] for new in batch]
        return [change for change in changes if change is not None]

    def update(self, item_id: str, body: dict[str, Any],
               rewrite: Rewrite | None = None) -> tuple[Occurrence, Change]:
        """Apply a Graph PATCH. On an occurrence it becomes an exception; on a master a change of
        its times or recurrence drops exceptions and cancellations, as Outlook does. `rewrite`,
        if given, maps the resulting fields to the fields stored (a room's processing rules)."""
        now = time.time()
        with self.lock:
            event, original = self._locate(item_id)
            if original is not None:
                instance = find_occurrence(event, original)
                if instance is None:
                    raise not_found()
                fields = read_fields(body, instance.fields)
                fields = rewrite(fields) if rewrite else fields
                exception = ExceptionVersion(fields, new_change_key(), now)
                updated = replace(event, exceptions={**event.exceptions, original: exception}, modified=now,
                                  change_key=new_change_key())
                result_id, change_key = occurrence_id(event.id, original), exception.change_key
            else:
                fields = read_fields(body, event.fields)
                fields = rewrite(fields) if rewrite else fields
                recurrence = read_recurrence(body, fields) if "recurrence" in body else event.recurrence
                updated = replace(event, fields=fields, recurrence=recurrence, modified=now,
                                  change_key=new_change_key())
                if _series_moved(event, updated):
                    updated = replace(updated, recurrence=_shift_start(event, updated), exceptions={},
                                      cancelled=frozenset())
                result_id, change_key = event.id, updated.change_key
            self._events[event.id] = updated
            self._commit(event.id, event)
        item = as_occurrence(updated) if original is None else find_occurrence(updated, original)
        if item is None:  # cannot happen: the instance was just stored as an exception
            raise not_found()
        return item, Change("updated", result_id, change_key)

    def delete(self, item_id: str, organizer_only: bool = False) -> Change:
        """Delete a single or a whole series; on an occurrence id, cancel that instance only.
        With `organizer_only` (the cancel action) refuse when the mailbox does not organize it."""
        with self.lock:
            event, original = self._locate(item_id)
            if organizer_only and not event.is_organizer:
                raise EventInvalid("ErrorInvalidRequest", "Your request can't be completed. You need to be an "
                                   "organizer to cancel a meeting.")
            if original is None:
                del self._events[event.id]
                if event.transaction_id and self._by_transaction.get(event.transaction_id) == event.id:
                    del self._by_transaction[event.transaction_id]
                self._commit(event.id, event)
                return Change("deleted", event.id, event.change_key)
            if find_occurrence(event, original) is None:
                raise not_found()
            exceptions = {k: v for k, v in event.exceptions.items() if k != original}
            self._events[event.id] = replace(event, exceptions=exceptions, cancelled=event.cancelled | {original},
                                             modified=time.time(), change_key=new_change_key())
            self._commit(event.id, event)
            return Change("deleted", occurrence_id(event.id, original), event.change_key)

    # -- sync -----------------------------------------------------------------------------------

    def changed_since(self, since: int, upto: int) -> dict[str, StoredEvent | None]:
        """For each event changed after `since` up to `upto`: its version as of `since` (None if
        it did not exist then). SyncStateGone when the log no longer reaches back to `since`."""
        with self.lock:
            if since < self._log_floor or since > self.seq or upto > self.seq:
                raise SyncStateGone(f"sync state {since} is not available")
            changed: dict[str, StoredEvent | None] = {}
            for index in range(bisect.bisect_right(self._log_seqs, since), len(self._log)):
                record = self._log[index]
                if record.seq > upto:
                    break
                changed.setdefault(record.event_id, record.before)
            return changed

    def expire_tokens(self) -> None:
        with self.lock:
            self.generation = os.urandom(6).hex()

    # -- internals ------------------------------------------------------------------------------

    def _locate(self, item_id: str) -> tuple[StoredEvent, dt.datetime | None]:
        parsed = parse_event_id(item_id)
        if parsed is None:
            raise EventInvalid("ErrorInvalidIdMalformed", "Id is malformed.")
        event = self._events.get(parsed[0])
        if event is None or (parsed[1] is not None and event.recurrence is None):
            raise not_found()
        return event, parsed[1]

    def _commit(self, event_id: str, before: StoredEvent | None) -> None:
        self.seq += 1
        self._log.append(_Record(self.seq, event_id, before))
        self._log_seqs.append(self.seq)
        if len(self._log) > CHANGE_LOG_LIMIT:
            self._log_floor = self._log_seqs[CHANGE_LOG_TRIM - 1]
            del self._log[:CHANGE_LOG_TRIM]
            del self._log_seqs[:CHANGE_LOG_TRIM]


def _series_moved(before: StoredEvent, after: StoredEvent) -> bool:
    if after.recurrence is None:
        return before.recurrence is not None
    return (before.fields.start, before.fields.end, before.recurrence) != (
        after.fields.start, after.fields.end, after.recurrence)


def _shift_start(before: StoredEvent, after: StoredEvent) -> Recurrence | None:
    """A series whose first start moves to another day starts its range on that day too."""
    if after.recurrence is None or after.recurrence != before.recurrence:
        return after.recurrence
    zone = resolve_zone(after.fields.start_zone)
    moved = (after.fields.start.astimezone(zone).date() - before.fields.start.astimezone(zone).date()).days
    if moved == 0:
        return after.recurrence
    return after.recurrence.with_start(after.recurrence.start_date + dt.timedelta(days=moved))
