"""The tenant's readiness on the admin page, in headless Chromium against devhost, Azurite and
m365sim: a freshly consented tenant is told the app reads every calendar and is offered the RBAC
script; once the simulator scopes the app to rooms, Re-check says so; each room finding appears
with its fix; the room settings script downloads for all rooms or the chosen ones; Discover shows
each room's finding and checks the listed rooms; many findings are counted first and listed 25 at
a time; a phone shows the panel without sideways scrolling.

Waits only with Playwright's auto-waiting `expect(...)`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import PHONE, shoot, shoot_part, sign_in
from tests.e2e.pages import finding_row, open_manage, readiness_panel
from tests.flows import new_sim_tenant, verified_account
from tests.integration.connector_support import account_with_calendars, set_knobs

pytestmark = pytest.mark.e2e

# A check of a few rooms answers in seconds; the API allows it up to a minute.
CHECK_TIMEOUT = 60_000
# The panel refreshes its report at most every 10 s when the account's calendars change.
GENTLE_TIMEOUT = 25_000


def recheck(page: Page) -> Any:
    panel = readiness_panel(page)
    button = panel.get_by_role("button", name="Re-check")
    button.click()
    expect(panel.get_by_role("status").filter(has_text="Checked just now")).to_be_visible(timeout=CHECK_TIMEOUT)
    expect(button).to_be_enabled()
    return panel


def download(page: Page, link: Any) -> tuple[str, str]:
    """Click a download link as a person would; (the file's suggested name, its text)."""
    with page.expect_download() as info:
        link.click()
    saved = info.value
    assert saved.failure() is None, saved.failure()
    return saved.suggested_filename, Path(saved.path()).read_text(encoding="utf-8")


def test_a_consented_tenant_reads_every_calendar_until_re_check_finds_it_scoped_to_rooms(
        admin_page: Any, admin: Any, stack: Any) -> None:
    page, _problems = admin_page
    account = account_with_calendars(admin, stack, rooms=2, queue=False)
    open_manage(page, stack.base_url, account["account_id"])
    panel = readiness_panel(page)
    access = panel.locator(".readiness-access")
    expect(access).to_have_attribute("data-access", "tenant_wide")
    expect(access).to_contain_text("Warning This app can read every calendar in the tenant")
    expect(access).to_contain_text("To fix: download the RBAC for Applications script")
    # Consent checked the tenant before these rooms were added: the panel says they wait for a Re-check.
    expect(panel.get_by_text("None of this account's 2 calendars has been checked yet: press Re-check.")
           ).to_be_visible()

    name, text = download(page, access.get_by_role("link", name="Download the RBAC script (.ps1)"))
    assert name.endswith(".ps1"), name
    assert "New-ManagementScope" in text and "Application Calendars.ReadWrite" in text

    set_knobs(stack, account["tenant_id"], app_scope="rooms")
    recheck(page)
    expect(access).to_have_attribute("data-access", "rooms_only")
    expect(access).to_contain_text("Good Scoped to room mailboxes")
    expect(access).to_contain_text("Checked just now.")
    expect(panel.get_by_text("2 rooms checked: no problems found.")).to_be_visible()
    expect(panel.get_by_text(re.compile("checked yet"))).to_have_count(0)
    expect(access.get_by_role("link", name="Download the RBAC script again (.ps1)")).to_be_visible()


def test_room_findings_show_their_fix_and_the_room_settings_script_names_the_chosen_rooms(
        admin_page: Any, admin: Any, stack: Any) -> None:
    page, _problems = admin_page
    account = verified_account(admin, stack, rooms=4)
    hybrid, equipment, fine, later = account["room_emails"]
    for email in (hybrid, equipment, fine):
        assert admin.post(f"/api/accounts/{account['account_id']}/calendars", json={"email": email}).status_code == 201
    set_knobs(stack, account["tenant_id"], rest_disabled_mailboxes=[hybrid], mailbox_purposes={equipment: "equipment"})
    open_manage(page, stack.base_url, account["account_id"])
    panel = recheck(page)
    expect(panel.get_by_role("status")).to_contain_text("3 rooms checked, 2 with findings.")
    expect(panel.get_by_text("3 rooms checked: 2 with findings.")).to_be_visible()
    counts = panel.get_by_role("list", name="Findings by kind")
    expect(counts.get_by_role("listitem")).to_have_count(2)
    expect(counts).to_contain_text("1 Not reachable by Graph (on-premises or hybrid)")
    expect(counts).to_contain_text("1 Not a room mailbox")

    expect(finding_row(panel, hybrid)).to_contain_text("MailboxNotEnabledForRESTAPI")
    expect(finding_row(panel, hybrid)).to_contain_text("To fix: move the mailbox to Exchange Online")
    expect(finding_row(panel, equipment)).to_contain_text(f"Not a room mailbox {equipment} is an equipment mailbox")
    expect(finding_row(panel, equipment).locator(".finding-fix")).to_contain_text("add the room's own address")
    expect(finding_row(panel, fine)).to_have_count(0)
    # Errors of the same severity: by address.
    expect(panel.locator("table.readiness-table tbody th")).to_have_text(sorted([hybrid, equipment]))

    # The kind filter narrows the list; every kind again brings both back.
    panel.get_by_label("Kind of finding").select_option(label="Not a room mailbox (1)")
    expect(panel.locator("table.readiness-table tbody tr")).to_have_count(1)
    panel.get_by_label("Kind of finding").select_option(value="")
    expect(panel.locator("table.readiness-table tbody tr")).to_have_count(2)

    panel.get_by_label("Yes: invitations from outside the organisation too").check()
    panel.get_by_role("checkbox", name=f"Choose {equipment}").check()
    chosen = panel.get_by_role("link", name="Download for the 1 chosen room (.ps1)")
    name, text = download(page, chosen)
    assert name.startswith("room-settings-") and name.endswith(".ps1"), name
    assert f"'{equipment}'" in text and hybrid not in text and fine not in text
    assert "ProcessExternalMeetingMessages = $true" in text
    shoot_part(panel, "20-readiness-panel")

    panel.get_by_label("No: only invitations from inside the organisation").check()
    _name, text = download(page, panel.get_by_role("link", name="Download for all 3 rooms (.ps1)"))
    assert all(f"'{email}'" in text for email in (hybrid, equipment, fine))
    assert "ProcessExternalMeetingMessages = $false" in text

    # A room added now: the panel says it waits for a Re-check, without a reload.
    page.get_by_label("Room email").fill(later)
    page.get_by_role("button", name="Add", exact=True).click()
    expect(panel.get_by_text("1 calendar added since the last check is not checked yet: Re-check checks it.")
           ).to_be_visible()
    expect(panel.get_by_role("link", name="Download for all 4 rooms (.ps1)")).to_be_visible()
    recheck(page)
    expect(panel.get_by_text("4 rooms checked: 2 with findings.")).to_be_visible()


def test_discover_shows_each_rooms_finding_and_checks_the_listed_rooms(admin_page: Any, admin: Any,
                                                                         stack: Any) -> None:
    page, _problems = admin_page
    account = verified_account(admin, stack, rooms=2)
    hybrid, fine = account["room_emails"]
    set_knobs(stack, account["tenant_id"], rest_disabled_mailboxes=[hybrid])
    open_manage(page, stack.base_url, account["account_id"])
    page.get_by_role("button", name="Discover rooms").click()
    picker = page.locator(".rooms-picker")
    expect(picker.get_by_text("2 rooms found in the tenant")).to_be_visible()
    readiness = picker.locator("td.readiness-cell")
    expect(readiness).to_have_text(["Not checked yet", "Not checked yet"])  # consent checked no room yet

    button = picker.get_by_role("button", name="Check these rooms")
    button.click()
    expect(picker.get_by_role("status").filter(has_text="Checked 2 rooms: 1 room with findings.")).to_be_visible(
        timeout=CHECK_TIMEOUT)
    hybrid_row = picker.locator("tbody tr").filter(has_text=hybrid)
    expect(hybrid_row.locator("td.readiness-cell")).to_contain_text(
        f"Not reachable by Graph (on-premises or hybrid) {hybrid} is on-premises or hybrid")
    expect(picker.locator("tbody tr").filter(has_text=fine).locator("td.readiness-cell")).to_have_text(
        "No problems found")
    expect(button).to_be_enabled()
    shoot(page, "21-discover-readiness")

    # Added, the checked rooms' findings reach the Readiness panel without a Re-check or a reload.
    panel = readiness_panel(page)
    expect(panel.get_by_text("No room of this account has been checked yet.")).to_be_visible()
    picker.get_by_label("Select all rooms not yet added").check()
    picker.get_by_role("button", name="Add 2 selected rooms").click()
    expect(picker.get_by_text("Added 2 rooms.")).to_be_visible()
    expect(panel.get_by_text("2 rooms checked: 1 with findings.")).to_be_visible(timeout=GENTLE_TIMEOUT)
    expect(finding_row(panel, hybrid)).to_contain_text("MailboxNotEnabledForRESTAPI")


def test_many_findings_are_counted_first_and_listed_twenty_five_at_a_time(admin_page: Any, admin: Any,
                                                                          stack: Any) -> None:
    page, _problems = admin_page
    account = verified_account(admin, stack, rooms=30)
    rooms = account["room_emails"]
    bulk = admin.post(f"/api/accounts/{account['account_id']}/calendars/bulk",
                      json={"rooms": [{"email": email} for email in rooms]})
    assert bulk.status_code == 200 and bulk.json()["added"] == 30, bulk.text[:300]
    set_knobs(stack, account["tenant_id"], missing_mailboxes=rooms)
    open_manage(page, stack.base_url, account["account_id"])
    panel = recheck(page)
    expect(panel.get_by_role("list", name="Findings by kind")).to_have_text("30 Not found")
    summary = panel.locator("summary")
    expect(summary).to_have_text("Rooms with findings (30)")
    rows = panel.locator("table.readiness-table tbody tr")
    expect(rows.first).to_be_hidden()  # more than 25: the counts come first, the list opens on request
    summary.click()
    expect(rows).to_have_count(25)
    expect(panel.locator("table.readiness-table caption")).to_have_text("The first 25 of 30 rooms, the worst first")
    panel.get_by_role("button", name="Show all 30 rooms").click()
    expect(rows).to_have_count(30)
    # The keyboard goes on at the first room that was not shown before.
    expect(panel.get_by_role("checkbox", name=f"Choose {sorted(rooms)[25]}")).to_be_focused()
    panel.get_by_label("Choose every listed room (30)").check()
    _name, text = download(page, panel.get_by_role("link", name="Download for the 30 chosen rooms (.ps1)"))
    assert all(f"'{email}'" in text for email in rooms)


def test_re_check_of_an_account_not_yet_authorized_says_what_the_api_says(admin_page: Any, admin: Any,
                                                                          stack: Any) -> None:
    page, _problems = admin_page
    tenant = new_sim_tenant(stack, rooms=1)
    added = admin.post("/api/accounts", json={"tenant_id": tenant["domain"]})
    assert added.status_code == 201, added.text
    open_manage(page, stack.base_url, added.json()["account"]["id"])
    panel = readiness_panel(page)
    expect(panel.locator(".readiness-access")).to_have_attribute("data-access", "unknown")
    expect(panel.locator(".readiness-access")).to_contain_text("Not checked yet.")
    panel.get_by_role("button", name="Re-check").click()
    alert = panel.get_by_role("alert").filter(has_text="The check failed:")
    expect(alert).to_contain_text("authorize it first")
    expect(panel.get_by_role("button", name="Re-check")).to_be_enabled()


def test_phone_width_shows_the_readiness_panel_without_sideways_scrolling(launch: Any, admin: Any,
                                                                          stack: Any) -> None:
    account = account_with_calendars(admin, stack, rooms=2, queue=False)
    hybrid = account["room_emails"][0]
    set_knobs(stack, account["tenant_id"], rest_disabled_mailboxes=[hybrid])
    _context, page, problems = launch(viewport=PHONE)
    sign_in(page, stack.base_url)
    open_manage(page, stack.base_url, account["account_id"])
    panel = recheck(page)
    row = finding_row(panel, hybrid)
    expect(row).to_contain_text("MailboxNotEnabledForRESTAPI")
    expect(row.locator("td").last).to_have_attribute("data-label", "Findings")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    row.scroll_into_view_if_needed()
    shoot(page, "22-phone-readiness", full_page=False)
    assert problems.page_errors == [] and problems.csp_violations == [] and problems.dialogs == []
