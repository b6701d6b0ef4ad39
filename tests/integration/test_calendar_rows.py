"""CalendarRepository.change against Azurite: the read-modify-write every background writer uses."""

from __future__ import annotations

import uuid
from typing import Any

from shared.calendars import Calendar, CalendarRepository
from shared.storage import StorageAccount


def _rows(stack: Any) -> CalendarRepository:
    return CalendarRepository(StorageAccount.from_connection_string(stack.storage_connection_string).table("Calendars"))


def _added(rows: CalendarRepository) -> Calendar:
    return rows.add(Calendar(account_id=f"rows-{uuid.uuid4().hex[:8]}", email=f"{uuid.uuid4().hex[:8]}@example.com"))


def test_a_change_to_a_row_written_meanwhile_is_applied_to_what_was_written(stack: Any) -> None:
    rows = _rows(stack)
    stale = _added(rows)
    fresh = rows.get(stale.account_id, stale.email)
    fresh.display_name = "Written meanwhile"
    rows.save(fresh)
    applied: list[str | None] = []

    def apply(current: Calendar) -> bool:
        applied.append(current.display_name)
        current.resync_needed = True
        return True

    saved = rows.change(stale, apply)
    assert saved is not None and applied == [None, "Written meanwhile"]
    stored = rows.get(stale.account_id, stale.email)
    assert stored.resync_needed is True and stored.display_name == "Written meanwhile"


def test_a_change_that_finds_nothing_to_do_or_no_row_saves_nothing(stack: Any) -> None:
    rows = _rows(stack)
    calendar = _added(rows)
    etag = calendar.etag
    assert rows.change(calendar, lambda current: False) is None
    assert rows.get(calendar.account_id, calendar.email).etag == etag
    rows.delete(calendar, if_unchanged=False)
    # Removed meanwhile: the save conflicts, the re-read finds no row, and nothing is written back.
    assert rows.change(calendar, lambda current: True) is None
    assert rows.find(calendar.account_id, calendar.email) is None
