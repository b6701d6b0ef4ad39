"""Calendars the change webhook has just read, remembered by one process for a short while.

Under load a room's notifications come every few seconds, and each one read its calendar to
check the clientState: a read per notification that tells nothing new. What is remembered here
(`FRESH_FOR`, at most `KNOWN_PER_PROCESS` calendars, the least recently used forgotten first) is
taken only for a notification whose clientState it proves; anything else reads the calendar
again, so a subscription made since (its new clientState) is never refused for a stale copy.
What a remembered copy can miss is safe to miss here: a calendar removed, disconnected or
relinked meanwhile has its message dropped or judged by the sync round, which always reads the
calendar itself; the webhook only says "look again". Lifecycle notifications never use it:
they change the calendar. Callers get a copy of their own. It never calls storage.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import replace
from datetime import timedelta

from shared.calendars import Calendar

FRESH_FOR = timedelta(seconds=60)
KNOWN_PER_PROCESS = 10_000  # about 2 KB each

Key = tuple[str, str]  # (tenant = account id, subscription id), lower-cased


class KnownCalendars:
    def __init__(self, fresh_for: timedelta = FRESH_FOR, room_for: int = KNOWN_PER_PROCESS) -> None:
        self._fresh_for = fresh_for.total_seconds()
        self._room_for = room_for
        self._known: OrderedDict[Key, tuple[float, Calendar]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Key) -> Calendar | None:
        """A copy of the calendar read for this subscription less than `FRESH_FOR` ago, else None."""
        with self._lock:
            found = self._known.get(key)
            if found is None:
                return None
            if time.monotonic() - found[0] >= self._fresh_for:
                del self._known[key]
                return None
            self._known.move_to_end(key)
            return _copy(found[1])

    def put(self, key: Key, calendar: Calendar, *, read_at: float | None = None) -> None:
        """Remember the calendar as read at `read_at` (monotonic; now by default)."""
        with self._lock:
            self._known[key] = (time.monotonic() if read_at is None else read_at, _copy(calendar))
            self._known.move_to_end(key)
            if len(self._known) > self._room_for:
                self._known.popitem(last=False)

    def saved(self, key: Key, calendar: Calendar) -> None:
        """The webhook wrote the calendar: remember what it wrote, as fresh as the copy it changed."""
        with self._lock:
            found = self._known.get(key)
            if found is not None:
                self._known[key] = (found[0], _copy(calendar))

    def forget(self, key: Key) -> None:
        with self._lock:
            self._known.pop(key, None)


def _copy(calendar: Calendar) -> Calendar:
    return replace(calendar, extra=dict(calendar.extra))
