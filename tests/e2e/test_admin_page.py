"""The admin page in headless Chromium: an administrator's walk through Calendar Integrations
and Manage Calendars against devhost, Azurite and m365sim, with screenshots of each screen.

Waits only with Playwright's auto-waiting `expect(...)`; status changes made by the
connector must appear without reloading the page (the page polls).
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
import requests
from playwright.sync_api import Page, expect

from shared.connector.runs import RUN_PARTITION
from shared.models import iso, iso_precise, utc_now
from shared.storage import StorageAccount
from tests.e2e.conftest import ADMIN_USER, PHONE, shoot, sign_in
from tests.e2e.pages import calendar_row, open_manage, row_action, table_settled
from tests.flows import new_sim_tenant, verified_account

pytestmark = pytest.mark.e2e


def unique() -> str:
    return uuid.uuid4().hex[:8]


def import_spaces(admin: Any, spaces: list[dict[str, Any]]) -> None:
    response = admin.post("/api/spaces/import", json={"spaces": spaces})
    assert response.status_code == 200, response.text
    assert not response.json().get("rejected"), response.json()


def building(tag: str) -> list[dict[str, Any]]:
    """A building of its own with two floors, so tests never see each other's spaces."""
    return [
        {"id": f"s-{tag}-101", "building_id": f"b-{tag}", "building_name": f"Tower {tag}", "floor": "1",
         "number": f"{tag}-101", "name": f"Orchard {tag}", "type": "meeting_room", "capacity": 8},
        {"id": f"s-{tag}-201", "building_id": f"b-{tag}", "building_name": f"Tower {tag}", "floor": "2",
         "number": f"{tag}-201", "name": f"Birch {tag}", "type": "meeting_room", "capacity": 4},
    ]


def accept_consent(page: Page, admin_upn: str) -> None:
    expect(page.get_by_role("heading", name="Permissions requested")).to_be_visible()
    page.get_by_label("Administrator account").fill(admin_upn)
    page.get_by_role("button", name="Accept").click()


# --- Calendar Integrations ---------------------------------------------------------------------

def test_add_account_authorize_and_accept_shows_account_verified(launch: Any, stack: Any) -> None:
    tenant = new_sim_tenant(stack, rooms=3)
    _context, page, problems = launch()
    page.goto(f"{stack.base_url}/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shoot(page, "01-sign-in")
    sign_in(page, stack.base_url)
    expect(page.get_by_role("heading", level=1, name="Calendar Integrations")).to_be_visible()

    add = page.get_by_role("button", name="Add Calendar Account")
    add.click()
    dialog = page.get_by_role("dialog", name="Add Calendar Account")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Tenant ID")).to_be_focused()
    dialog.get_by_label("Tenant ID").fill(tenant["domain"])
    shoot(page, "02-add-calendar-account", full_page=False)
    dialog.get_by_role("button", name="Authorize").click()

    accept_consent(page, tenant["admin"])
    notice = page.get_by_role("status").filter(has_text=f"Account Verified: {tenant['domain']}")
    expect(notice).to_be_visible()
    expect(page).to_have_url(re.compile(r"/#/$"))  # the consent query is gone: a reload shows no stale message
    row = page.locator("tbody tr").filter(has_text=tenant["domain"])
    expect(row.get_by_text("Account Verified", exact=True)).to_be_visible()
    expect(row.get_by_role("cell").first).to_contain_text(ADMIN_USER)  # who consented, and when
    shoot(page, "03-account-verified")
    assert problems.page_errors == [] and problems.csp_violations == [] and problems.dialogs == []


def test_dialog_cancel_restores_focus_and_cancelled_consent_says_why(admin_page: Any, stack: Any) -> None:
    page, _problems = admin_page
    tenant = new_sim_tenant(stack, rooms=1)
    add = page.get_by_role("button", name="Add Calendar Account")
    add.click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(add).to_be_focused()

    add.click()
    dialog = page.get_by_role("dialog", name="Add Calendar Account")
    dialog.get_by_role("button", name="Authorize").click()
    expect(dialog.get_by_role("alert")).to_contain_text("Enter the tenant ID")
    dialog.get_by_label("Tenant ID").fill(tenant["domain"])
    dialog.get_by_role("button", name="Authorize").click()
    expect(page.get_by_role("heading", name="Permissions requested")).to_be_visible()
    page.get_by_role("button", name="Cancel").click()

    alert = page.get_by_role("alert").filter(has_text=f"Consent was not completed for {tenant['domain']}")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("cancelled or declined")
    row = page.locator("tbody tr").filter(has_text=tenant["domain"])
    expect(row.get_by_text("Consent failed", exact=True)).to_be_visible()
    shoot(page, "04-consent-cancelled")


def test_reauthenticate_then_remove_account_with_confirmation(admin_page: Any, admin: Any, stack: Any) -> None:
    page, _problems = admin_page
    account = verified_account(admin, stack, rooms=2)
    added = admin.post(f"/api/accounts/{account['account_id']}/calendars", json={"email": account["room_emails"][0]})
    assert added.status_code == 201, added.text
    page.reload()
    menu_button = page.get_by_role("button", name=f"More actions for {account['domain']}")
    menu_button.click()
    page.get_by_role("menuitem", name="Re-Authenticate").click()
    accept_consent(page, account["admin"])
    expect(page.get_by_role("status").filter(has_text=f"Account Verified: {account['domain']}")).to_be_visible()

    menu_button = page.get_by_role("button", name=f"More actions for {account['domain']}")
    menu_button.focus()
    page.keyboard.press("ArrowDown")  # the menu opens from the keyboard too
    expect(page.get_by_role("menuitem", name="Manage Calendars")).to_be_focused()
    page.keyboard.press("Escape")
    expect(menu_button).to_be_focused()
    menu_button.click()
    page.get_by_role("menuitem", name="Remove Account").click()
    confirm = page.get_by_role("dialog", name=f"Remove {account['domain']}?")
    expect(confirm).to_contain_text("1 room calendar")
    expect(confirm).to_contain_text("subscriptions")
    shoot(page, "05-remove-account-confirmation", full_page=False)
    confirm.get_by_role("button", name="Remove Account").click()
    removed = f"Removed {account['domain']} and 1 room calendar"
    expect(page.get_by_role("status").filter(has_text=removed)).to_be_visible()
    expect(page.get_by_role("button", name=f"More actions for {account['domain']}")).to_have_count(0)
    assert admin.get(f"/api/accounts/{account['account_id']}").status_code == 404


# --- Manage Calendars --------------------------------------------------------------------------

def test_add_by_email_and_upload_csv_with_good_and_bad_rows(admin_page: Any, admin: Any, stack: Any) -> None:
    page, _problems = admin_page
    account = verified_account(admin, stack, rooms=4)
    rooms = account["room_emails"]
    open_manage(page, stack.base_url, account["account_id"])

    page.get_by_label("Room email").fill("not an email")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_role("alert").filter(has_text="was not added")).to_be_visible()
    page.get_by_label("Room email").fill(rooms[0].upper())
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.get_by_text(f"Added {rooms[0]}.")).to_be_visible()
    expect(calendar_row(page, rooms[0]).get_by_text("Added", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name=".CSV template")).to_have_attribute("href", "/api/calendars/template.csv")

    csv = f"email,roomID\n{rooms[1]},\nnot-an-email,\n{rooms[2]},\n{rooms[1]},\n".encode()
    page.get_by_label("CSV file").set_input_files({"name": "rooms.csv", "mimeType": "text/csv", "buffer": csv})
    page.get_by_label("Validate only").check()
    page.get_by_role("button", name="Upload CSV").click()
    report = page.locator(".import-report")
    expect(report).to_have_attribute("data-import-status", "completed", timeout=30_000)
    expect(report).to_contain_text("Validation result (nothing was changed)")
    expect(calendar_row(page, rooms[1])).to_have_count(0)

    page.get_by_label("CSV file").set_input_files({"name": "rooms.csv", "mimeType": "text/csv", "buffer": csv})
    page.get_by_label("Validate only").uncheck()
    page.get_by_role("button", name="Upload CSV").click()
    expect(report).to_have_attribute("data-import-status", "completed", timeout=30_000)
    expect(report).to_contain_text("2 added")
    rejected = report.get_by_role("table")
    expect(rejected.get_by_role("row")).to_have_count(3)  # the header and two rejected rows
    expect(rejected.get_by_role("row").filter(has_text="not-an-email")).to_contain_text("3")
    expect(rejected.get_by_role("row").filter(has_text=rooms[1])).to_contain_text("5")
    expect(report.get_by_role("link", name=re.compile("full report"))).to_be_visible()
    # The table refreshed on its own when the import finished.
    expect(calendar_row(page, rooms[1])).to_have_count(1)
    expect(calendar_row(page, rooms[2])).to_have_count(1)
    shoot(page, "06-csv-import-report")


def test_discover_rooms_and_add_the_picked_ones_with_an_approved_link(admin_page: Any, admin: Any, stack: Any) -> None:
    page, _problems = admin_page
    account = verified_account(admin, stack, rooms=3)
    rooms = account["room_emails"]
    open_manage(page, stack.base_url, account["account_id"])
    page.get_by_role("button", name="Discover rooms").click()
    picker = page.locator(".rooms-picker")
    expect(picker.get_by_text("3 rooms found in the tenant")).to_be_visible()
    shoot(page, "07-discover-rooms")
    picker.get_by_label("Select all rooms not yet added").check()
    picker.get_by_role("checkbox", name=re.compile(r"^Add ")).first.uncheck()
    picker.get_by_role("button", name="Add 2 selected rooms").click()
    expect(picker.get_by_text("Added 2 rooms.")).to_be_visible()
    expect(page.locator("table.calendars-table tbody tr")).to_have_count(2)
    expect(picker.get_by_text("Already added")).to_have_count(2)
    listed = set(page.locator("table.calendars-table tbody th").all_inner_texts())
    assert listed < set(rooms) and len(listed) == 2, listed


def test_connect_calendars_shows_connected_without_reloading(admin_page: Any, admin: Any, stack: Any,
                                                             fire: Any) -> None:
    page, _problems = admin_page
    account = verified_account(admin, stack, rooms=2)
    bulk = admin.post(f"/api/accounts/{account['account_id']}/calendars/bulk",
                      json={"rooms": [{"email": email} for email in account["room_emails"]]})
    assert bulk.status_code == 200 and bulk.json()["added"] == 2, bulk.text
    open_manage(page, stack.base_url, account["account_id"])
    page.get_by_role("button", name="Connect Calendars").click()
    expect(page.get_by_text("2 calendars queued for connection.")).to_be_visible()
    expect(page.get_by_text(re.compile(r"The next run is due at"))).to_be_visible()
    for email in account["room_emails"]:
        expect(calendar_row(page, email).get_by_text("Queued", exact=True)).to_be_visible()
    shoot(page, "08-calendars-queued")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)

    fire("connector_run")
    for email in account["room_emails"]:
        expect(calendar_row(page, email).get_by_text("Connected", exact=True)).to_be_visible(timeout=30_000)
    assert navigations == [], navigations  # no reload: the page polled
    shoot(page, "09-calendars-connected")


def test_a_run_that_stopped_midway_is_named_under_the_connect_button(admin_page: Any, admin: Any,
                                                                    stack: Any) -> None:
    """A run killed mid-connect (kill -9, a host restart) leaves a record that never finished: the
    page says so and what happens to the rooms it held."""
    page, _problems = admin_page
    account = verified_account(admin, stack, rooms=1)
    runs = StorageAccount.from_connection_string(stack.storage_connection_string).table("ConnectorRuns")
    # Newer than the run verified_account just finished, and already past its lease.
    started = utc_now()
    run_id = f"e2e-{unique()}"
    runs.upsert({"PartitionKey": RUN_PARTITION, "RowKey": f"{10**13 - int(started.timestamp() * 1000):013d}-{run_id}",
                 "run_id": run_id, "started_at": iso(started), "finished_at": "", "heartbeat_at": iso(started),
                 "alive_until": iso_precise(started - timedelta(seconds=1)),
                 "deadline_at": iso(started + timedelta(minutes=10))})
    open_manage(page, stack.base_url, account["account_id"])
    line = page.locator("p.connector-line")
    expect(line).to_contain_text("A later run stopped before it finished")
    expect(line).to_contain_text("the rooms it held wait until their leases lapse")
    runs.delete(RUN_PARTITION, f"{10**13 - int(started.timestamp() * 1000):013d}-{run_id}")


def test_link_by_search_and_browse_then_unlink_and_remove(admin_page: Any, admin: Any, stack: Any) -> None:
    page, _problems = admin_page
    tag = unique()
    import_spaces(admin, building(tag))
    account = verified_account(admin, stack, rooms=2)
    first, second = account["room_emails"]
    for email in (first, second):
        assert admin.post(f"/api/accounts/{account['account_id']}/calendars", json={"email": email}).status_code == 201
    open_manage(page, stack.base_url, account["account_id"])

    # Link by Space Search (number or name)
    row_action(page, first, "Link to space")
    dialog = page.get_by_role("dialog", name=f"Link {first} to a space")
    expect(dialog.get_by_label("Space number or name")).to_be_focused()
    dialog.get_by_label("Space number or name").fill(f"{tag}-101")
    dialog.get_by_role("button", name="Search").click()
    dialog.get_by_role("button", name=f"Link {tag}-101 · Orchard {tag}").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.get_by_role("button", name=f"More actions for {first}")).to_be_focused()
    expect(calendar_row(page, first)).to_contain_text(f"{tag}-101 · Orchard {tag}")

    # Link by Browse: building → floor → space; a space taken by another calendar says by whom
    row_action(page, second, "Link to space")
    dialog = page.get_by_role("dialog", name=f"Link {second} to a space")
    dialog.get_by_label("Building").select_option(label=f"Tower {tag}")
    dialog.get_by_label("Floor").select_option(value="1")
    expect(dialog.get_by_text(f"Linked to {first}")).to_be_visible()
    dialog.get_by_role("button", name=f"Link {tag}-101 · Orchard {tag}").click()
    expect(dialog.get_by_role("alert")).to_contain_text(first)  # 409: the server names the holder
    dialog.get_by_label("Floor").select_option(value="2")
    shoot(page, "10-link-to-space-browse", full_page=False)
    dialog.get_by_role("button", name=f"Link {tag}-201 · Birch {tag}").click()
    expect(calendar_row(page, second)).to_contain_text(f"{tag}-201 · Birch {tag}")
    expect(page.get_by_role("status").filter(has_text=f"Linked {second} to {tag}-201")).to_be_visible()

    # The linked filter, then Unlink
    page.get_by_label("Space link").select_option(value="true")
    table_settled(page)
    expect(page.locator("table.calendars-table tbody tr")).to_have_count(2)
    row_action(page, first, "Unlink from space")
    expect(page.get_by_role("status").filter(has_text=f"Unlinked {first}")).to_be_visible()
    expect(calendar_row(page, first)).to_have_count(0)  # filtered out now: not linked any more
    page.get_by_label("Space link").select_option(value="")
    table_settled(page)
    expect(calendar_row(page, first)).to_contain_text("Not linked")
    shoot(page, "11-manage-calendars")

    # Remove, confirmed (cancel first: nothing happens)
    row_action(page, second, "Remove Calendar")
    confirm = page.get_by_role("dialog", name=f"Remove {second}?")
    expect(confirm).to_contain_text(f"{tag}-201 · Birch {tag}")
    confirm.get_by_role("button", name="Cancel").click()
    expect(calendar_row(page, second)).to_have_count(1)
    row_action(page, second, "Remove Calendar")
    page.get_by_role("dialog", name=f"Remove {second}?").get_by_role("button", name="Remove Calendar").click()
    expect(calendar_row(page, second)).to_have_count(0)
    expect(page.get_by_role("status").filter(has_text=f"Removed {second}.")).to_be_visible()
    space = admin.get(f"/api/spaces/s-{tag}-201").json()
    assert space["linked"] is None, space


def test_search_filters_and_server_paging(admin_page: Any, admin: Any, stack: Any) -> None:
    page, _problems = admin_page
    account = verified_account(admin, stack, rooms=1)
    emails = [f"room-{index:03d}@paging-{unique()}.example.com" for index in range(30)]
    bulk = admin.post(f"/api/accounts/{account['account_id']}/calendars/bulk",
                      json={"rooms": [{"email": email} for email in emails]})
    assert bulk.status_code == 200 and bulk.json()["added"] == 30, bulk.text[:300]
    open_manage(page, stack.base_url, account["account_id"])
    page.get_by_label("Per page").select_option("25")
    rows = page.locator("table.calendars-table tbody tr")
    expect(rows).to_have_count(25)
    expect(page.get_by_text("Page 1: calendars 1–25")).to_be_visible()
    page.get_by_role("button", name="Next page").click()
    expect(rows).to_have_count(5)
    expect(page.get_by_text("Page 2: calendars 26–30")).to_be_visible()
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()
    page.get_by_role("button", name="Previous page").click()
    expect(rows).to_have_count(25)
    page.get_by_label("Search by email").fill("room-02")
    expect(rows).to_have_count(10)
    page.get_by_label("Status").select_option("connected")
    expect(page.get_by_text("No calendar matches these filters.")).to_be_visible()


# --- Qualities ---------------------------------------------------------------------------------

def test_markup_in_imported_space_name_renders_as_text(admin_page: Any, admin: Any, stack: Any) -> None:
    page, problems = admin_page
    tag = unique()
    payload = "<img src=x onerror=alert(1)>"
    spaces = building(tag)
    spaces[0]["name"] = payload
    spaces[0]["building_name"] = f"<b>Tower</b> {tag}"
    import_spaces(admin, spaces)
    account = verified_account(admin, stack, rooms=1)
    email = account["room_emails"][0]
    assert admin.post(f"/api/accounts/{account['account_id']}/calendars", json={"email": email}).status_code == 201
    open_manage(page, stack.base_url, account["account_id"])

    row_action(page, email, "Link to space")
    dialog = page.get_by_role("dialog", name=f"Link {email} to a space")
    dialog.get_by_label("Space number or name").fill(f"{tag}-101")
    dialog.get_by_role("button", name="Search").click()
    expect(dialog.get_by_text(f"{tag}-101 · {payload}", exact=True)).to_be_visible()
    expect(dialog.get_by_text(f"<b>Tower</b> {tag}, Floor 1, 8 seats", exact=True)).to_be_visible()
    dialog.get_by_role("button", name=f"Link {tag}-101 · {payload}").click()
    expect(calendar_row(page, email)).to_contain_text(payload)
    expect(page.get_by_role("status").filter(has_text=f"Linked {email} to {tag}-101 · {payload}")).to_be_visible()
    assert page.locator("main img, #notices img, main b, #notices b").count() == 0
    assert problems.dialogs == []


def test_non_admin_sees_administrators_only(launch: Any, stack: Any) -> None:
    _context, page, problems = launch()
    sign_in(page, stack.base_url, user="viewer@contoso.onmicrosoft.com", administrator=False)
    expect(page.get_by_role("heading", level=1, name="Administrators only")).to_be_visible()
    expect(page.get_by_text("You are signed in as viewer@contoso.onmicrosoft.com")).to_be_visible()
    expect(page.get_by_role("button", name="Add Calendar Account")).to_have_count(0)
    shoot(page, "12-administrators-only")
    assert problems.page_errors == []


def test_phone_width_stacks_the_tables_without_sideways_scrolling(launch: Any, admin: Any, stack: Any) -> None:
    account = verified_account(admin, stack, rooms=2)
    for email in account["room_emails"]:
        assert admin.post(f"/api/accounts/{account['account_id']}/calendars", json={"email": email}).status_code == 201
    _context, page, problems = launch(viewport=PHONE)
    sign_in(page, stack.base_url)
    expect(page.get_by_role("button", name=f"More actions for {account['domain']}")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shoot(page, "13-phone-calendar-integrations")
    open_manage(page, stack.base_url, account["account_id"])
    expect(calendar_row(page, account["room_emails"][0])).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    row_action(page, account["room_emails"][0], "Link to space")
    expect(page.get_by_role("dialog")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shoot(page, "14-phone-link-dialog", full_page=False)
    assert problems.page_errors == []


def test_static_page_is_served_with_a_strict_content_security_policy(stack: Any) -> None:
    response = requests.get(f"{stack.base_url}/", timeout=10)
    assert response.status_code == 200
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert "<script type=\"module\" src=\"/js/app.js\">" in response.text
    assert "onclick" not in response.text and "innerHTML" not in response.text
