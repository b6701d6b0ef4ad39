"""What the change webhook remembers of the calendars it read (`shared.notifications.known`):
fresh for a while, then read again; the least recently used forgotten first; copies, so a
caller changing its calendar never changes another's."""

from __future__ import annotations

import time
from datetime import timedelta

from shared.calendars import Calendar
from shared.notifications.known import KnownCalendars

KEY = ("tenant", "subscription")


def test_a_calendar_is_known_while_fresh_then_read_again() -> None:
    known = KnownCalendars(fresh_for=timedelta(seconds=60))
    known.put(KEY, Calendar("tenant", "room@example.com"), read_at=time.monotonic() - 59)
    assert known.get(KEY) is not None
    known.put(KEY, Calendar("tenant", "room@example.com"), read_at=time.monotonic() - 61)
    assert known.get(KEY) is None
    assert known.get(KEY) is None  # forgotten, not only hidden


def test_what_a_caller_gets_is_its_own_copy() -> None:
    known = KnownCalendars()
    original = Calendar("tenant", "room@example.com", extra={"note": "kept"})
    known.put(KEY, original)
    original.space_id = "changed after it was remembered"
    taken = known.get(KEY)
    assert taken is not None and taken.space_id is None
    taken.extra["note"] = "changed by a caller"
    taken.last_notification_at = "2030-01-01T00:00:00Z"
    again = known.get(KEY)
    assert again is not None and again.extra == {"note": "kept"} and again.last_notification_at is None


def test_a_write_is_remembered_as_old_as_the_read_it_changed() -> None:
    known = KnownCalendars(fresh_for=timedelta(seconds=60))
    known.put(KEY, Calendar("tenant", "room@example.com"), read_at=time.monotonic() - 61)
    known.saved(KEY, Calendar("tenant", "room@example.com", last_notification_at="2030-01-01T00:00:00Z"))
    assert known.get(KEY) is None  # the write does not make a stale copy fresh
    known.saved(KEY, Calendar("tenant", "room@example.com"))  # nothing remembered: nothing to update
    assert known.get(KEY) is None


def test_the_least_recently_used_is_forgotten_first() -> None:
    known = KnownCalendars(room_for=2)
    for name in ("a", "b"):
        known.put(("tenant", name), Calendar("tenant", f"{name}@example.com"))
    assert known.get(("tenant", "a")) is not None  # used: now the most recent
    known.put(("tenant", "c"), Calendar("tenant", "c@example.com"))
    assert known.get(("tenant", "b")) is None
    assert known.get(("tenant", "a")) is not None and known.get(("tenant", "c")) is not None
    known.forget(("tenant", "a"))
    assert known.get(("tenant", "a")) is None
