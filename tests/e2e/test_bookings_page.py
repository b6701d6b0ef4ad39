"""A connected room's bookings on the admin page, in headless Chromium against devhost, Azurite and
m365sim: the calendars table shows each room's sync and follows new bookings made "from Outlook"
without a reload; the Bookings dialog lists today and the next 7 days; its Test booking proves both
directions, names the failing step when Graph refuses the write, and cleans up when it is closed.

Waits only with Playwright's auto-waiting `expect(...)` (and `wait_until` for the API's side).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import PHONE, shoot, sign_in
from tests.e2e.pages import calendar_row, open_manage, row_action
from tests.helpers import wait_until
from tests.integration.connector_support import set_knobs
from tests.integration.sync_support import at, book, linked_room

pytestmark = pytest.mark.e2e

# A sync round follows Graph's change notification within seconds; the table polls every 12 s.
SYNC_TIMEOUT = 60_000
ORGANIZER = {"emailAddress": {"name": "Ines Park", "address": "ines.park@contoso.com"}}


def calendar_bookings(admin: Any, room: dict[str, Any]) -> list[dict[str, Any]]:
    response = admin.get(f"/api/accounts/{room['account_id']}/calendars/{room['email']}/bookings")
    assert response.status_code == 200, response.text
    return response.json()["items"]


def open_bookings(page: Page, email: str) -> Any:
    row_action(page, email, "Bookings")
    dialog = page.get_by_role("dialog", name=f"Bookings: {email}")
    expect(dialog).to_be_visible()
    expect(dialog.locator(".bookings-area")).to_have_attribute("aria-busy", "false")
    return dialog


def step(dialog: Any, key: str) -> Any:
    return dialog.locator(f"li.test-step[data-step='{key}']")


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


def test_the_bookings_dialog_lists_today_and_the_next_seven_days(admin_page: Any, admin: Any, stack: Any,
                                                                 fire: Any) -> None:
    page, _problems = admin_page
    room = linked_room(admin, stack, fire)
    book(stack, room, "Board meeting", at(2), at(3), organizer=ORGANIZER)
    book(stack, room, "Secret offsite", at(5), at(6), sensitivity="private")
    holiday = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=2)
    book(stack, room, "Company holiday", holiday, holiday + timedelta(days=1), isAllDay=True, organizer=ORGANIZER)
    wait_until(lambda: len(calendar_bookings(admin, room)) == 3, timeout=60, message="the bookings never synced")
    open_manage(page, stack.base_url, room["account_id"])

    dialog = open_bookings(page, room["email"])
    expect(dialog).to_contain_text("Today and the next 7 days, in your time zone")
    days = dialog.locator(".booking-day h4")
    expect(days).to_have_count(8)
    expect(days.first).to_contain_text(re.compile(r"^Today, "))
    expect(days.nth(1)).to_contain_text(re.compile(r"^Tomorrow, "))
    board = dialog.locator("li.booking").filter(has_text="Board meeting")
    expect(board).to_contain_text("Organizer: Ines Park (ines.park@contoso.com)")
    expect(board.locator(".booking-when")).to_have_text(re.compile(r"^\d{1,2}:\d{2}\s?([AP]M)?–\d{1,2}:\d{2}"))
    expect(dialog.locator("li.booking").filter(has_text="Private")).to_have_count(1)
    expect(dialog.get_by_text("Secret offsite")).to_have_count(0)  # a private subject never reaches the page
    expect(dialog.locator(".sync-summary")).to_contain_text("Last synced")
    # The browser runs in UTC (conftest.TIME_ZONE): the all-day booking is on the third day shown.
    third_day = dialog.locator(".booking-day").nth(2)
    expect(third_day.locator("li.booking").first).to_contain_text("All dayCompany holiday")

    # A booking made while the dialog is open shows up in it on its own.
    book(stack, room, "Walk-in", at(4), at(5), organizer=ORGANIZER)
    expect(dialog.locator("li.booking").filter(has_text="Walk-in")).to_be_visible(timeout=SYNC_TIMEOUT)
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.get_by_role("button", name=f"More actions for {room['email']}")).to_be_focused()


def test_test_booking_walks_all_four_steps_to_both_directions_work(admin_page: Any, admin: Any, stack: Any,
                                                                   fire: Any) -> None:
    page, _problems = admin_page
    room = linked_room(admin, stack, fire)
    book(stack, room, "Quarterly review", at(3), at(4), organizer=ORGANIZER)
    wait_until(lambda: calendar_bookings(admin, room), timeout=60, message="the booking never synced")
    open_manage(page, stack.base_url, room["account_id"])
    dialog = open_bookings(page, room["email"])
    button = dialog.get_by_role("button", name="Test booking")
    button.click()
    expect(button).to_be_disabled()
    expect(step(dialog, "book")).to_have_attribute("data-state", "done")
    expect(step(dialog, "book")).to_contain_text(re.compile(r"Booked .+ as “Connection test”"))
    expect(step(dialog, "done")).to_have_attribute("data-state", "done", timeout=120_000)
    for key in ("book", "sync", "cancel"):
        expect(step(dialog, key)).to_have_attribute("data-state", "done")
    expect(dialog.get_by_role("status").filter(has_text="The connection test passed")).to_be_visible()
    expect(step(dialog, "sync")).to_contain_text("Read back from Microsoft Graph by the sync")
    expect(button).to_be_enabled()
    expect(dialog.locator("li.booking").filter(has_text="Connection test")).to_have_count(0)
    assert [b["subject"] for b in calendar_bookings(admin, room)] == ["Quarterly review"]
    shoot(page, "16-bookings-dialog-test-passed", full_page=False)


def test_a_denied_write_names_the_failing_step_and_the_table_shows_it(admin_page: Any, admin: Any, stack: Any,
                                                                      fire: Any) -> None:
    page, _problems = admin_page
    room = linked_room(admin, stack, fire)
    set_knobs(stack, room["tenant_id"], write_denied_mailboxes=[room["email"]])
    open_manage(page, stack.base_url, room["account_id"])
    dialog = open_bookings(page, room["email"])
    dialog.get_by_role("button", name="Test booking").click()
    expect(step(dialog, "book")).to_have_attribute("data-state", "failed")
    alert = dialog.get_by_role("alert").filter(has_text="The test failed at step 1")
    expect(alert).to_contain_text("Booking the next free 15 minutes on the room's calendar")
    expect(alert).to_contain_text("denied")
    for key in ("sync", "cancel", "done"):
        expect(step(dialog, key)).to_have_attribute("data-state", "skipped")
    expect(dialog.locator(".sync-summary")).to_contain_text(re.compile(r"Booking refused .*denied"))
    expect(dialog.get_by_role("button", name="Test booking")).to_be_enabled()
    shoot(page, "17-bookings-dialog-write-denied", full_page=False)
    dialog.get_by_role("button", name="Close").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    problem = calendar_row(page, room["email"]).locator(".sync-problem")
    expect(problem).to_contain_text(re.compile(r"Booking refused .*denied"))
    assert calendar_bookings(admin, room) == []


def test_closing_the_dialog_mid_test_cancels_the_test_booking(admin_page: Any, admin: Any, stack: Any,
                                                              fire: Any) -> None:
    page, _problems = admin_page
    room = linked_room(admin, stack, fire)
    # No change notification arrives: the test waits in its second step until the dialog closes.
    set_knobs(stack, room["tenant_id"], notification_drop_rate=1.0)
    open_manage(page, stack.base_url, room["account_id"])
    dialog = open_bookings(page, room["email"])
    dialog.get_by_role("button", name="Test booking").click()
    expect(step(dialog, "sync")).to_have_attribute("data-state", "running")
    expect(dialog.locator("li.booking").filter(has_text="Connection test")).to_contain_text(
        "Not yet read back by sync")
    assert [b["subject"] for b in calendar_bookings(admin, room)] == ["Connection test"]
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    notice = page.get_by_role("status").filter(has_text=f"The connection test of {room['email']} was stopped.")
    expect(notice).to_contain_text(re.compile(r"Its test booking \(.+\) was cancelled"))
    assert calendar_bookings(admin, room) == []
    set_knobs(stack, room["tenant_id"], notification_drop_rate=0.0)


def test_phone_width_shows_sync_and_the_bookings_dialog_without_sideways_scrolling(
        launch: Any, admin: Any, stack: Any, fire: Any) -> None:
    room = linked_room(admin, stack, fire)
    book(stack, room, "A rather long meeting subject that has to wrap on a phone", at(2), at(3), organizer=ORGANIZER)
    wait_until(lambda: calendar_bookings(admin, room), timeout=60, message="the booking never synced")
    _context, page, problems = launch(viewport=PHONE)
    sign_in(page, stack.base_url)
    open_manage(page, stack.base_url, room["account_id"])
    sync = calendar_row(page, room["email"]).locator("td.sync-cell")
    expect(sync).to_contain_text("Last synced")
    expect(sync).to_have_attribute("data-label", "Sync")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    calendar_row(page, room["email"]).scroll_into_view_if_needed()
    shoot(page, "18-phone-calendar-sync", full_page=False)
    dialog = open_bookings(page, room["email"])
    expect(dialog.locator("li.booking")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    dialog.locator("li.booking").scroll_into_view_if_needed()
    shoot(page, "19-phone-bookings-dialog", full_page=False)
    assert problems.page_errors == [] and problems.csp_violations == []
