"""A connected room's bookings on the admin page, in headless Chromium against devhost, Azurite and
m365sim: the calendars table shows each room's sync and follows new bookings made "from Outlook"
without a reload.

Waits only with Playwright's auto-waiting `expect(...)` (and `wait_until` for the API's side).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import shoot
from tests.e2e.pages import calendar_row, open_manage
from tests.integration.sync_support import at, book, linked_room

pytestmark = pytest.mark.e2e

# A sync round follows Graph's change notification within seconds; the table polls every 12 s.
SYNC_TIMEOUT = 60_000
ORGANIZER = {"emailAddress": {"name": "Ines Park", "address": "ines.park@contoso.com"}}


def test_the_table_shows_a_rooms_sync_and_follows_new_bookings_without_reloading(
        admin_page: Any, admin: Any, stack: Any, fire: Any) -> None:
    page, _problems = admin_page
    room = linked_room(admin, stack, fire)
    book(stack, room, "Quarterly review", at(3), at(4), organizer=ORGANIZER)
    open_manage(page, stack.base_url, room["account_id"])
    row = calendar_row(page, room["email"])
    sync = row.locator("td.sync-cell")
    expect(sync).to_contain_text(re.compile(r"Last synced (just now|\d+ minutes? ago)"))
    expect(sync.get_by_text("Quarterly review")).to_be_visible(timeout=SYNC_TIMEOUT)
    expect(sync).to_contain_text(re.compile(r"1 booking in the sync window"))
    expect(page.locator("table.calendars-table thead")).to_contain_text("Sync")

    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    search = page.get_by_label("Search by email")
    search.focus()
    book(stack, room, "Design critique", at(1), at(2), organizer=ORGANIZER)
    expect(sync.get_by_text("Design critique")).to_be_visible(timeout=SYNC_TIMEOUT)
    expect(sync).to_contain_text("2 bookings in the sync window")
    # The earlier booking comes first, and the poll took neither the page nor the keyboard focus.
    expect(sync.locator(".next-bookings li").first).to_contain_text("Design critique")
    expect(search).to_be_focused()
    assert navigations == [], navigations
    shoot(page, "15-calendar-sync-state")
