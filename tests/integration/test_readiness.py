"""Tenant readiness through devhost, Azurite and m365sim: a freshly consented tenant reads every
calendar and is offered the RBAC script; once the tenant's scope is rooms only, Re-check says so
and the rooms still connect; each room finding appears for its case; the scripts download."""

from __future__ import annotations

from tests.flows import verified_account
from tests.helpers import wait_until
from tests.integration.connector_support import account_with_calendars, calendar, set_knobs
from tests.integration.sync_support import at, book, linked_room


def _readiness(admin, account):  # noqa: ANN001, ANN202
    response = admin.get(f"/api/accounts/{account['account_id']}/readiness")
    assert response.status_code == 200, response.text
    return response.json()


def _check(admin, account, **body):  # noqa: ANN001, ANN202
    response = admin.post(f"/api/accounts/{account['account_id']}/readiness/check", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_consented_tenant_reads_every_calendar_until_it_is_scoped_to_rooms(admin, stack, fire):
    account = account_with_calendars(admin, stack, rooms=2)
    # Consent ran the first check on its own.
    first = _readiness(admin, account)
    assert first["access"] == "tenant_wide" and first["counts"]["tenant_wide_access"] == 1
    assert "every calendar" in next(f["reason"] for f in first["findings"] if f["kind"] == "tenant_wide_access")
    script = admin.get(first["scripts"]["rbac"])
    assert script.status_code == 200 and script.headers["Content-Type"].startswith("text/plain")
    assert ".ps1" in script.headers["Content-Disposition"]
    assert "New-ManagementScope" in script.text and "Application Calendars.ReadWrite" in script.text
    set_knobs(stack, account["tenant_id"], app_scope="rooms")
    scoped = _check(admin, account)
    assert scoped["access"] == "rooms_only", scoped["access_detail"]
    assert any(f["kind"] == "scoped_to_rooms" and f["reason"] == "Scoped to room mailboxes" for f in scoped["findings"])
    assert scoped["rooms_with_findings"] == 0
    fire("connector_run")
    assert all(calendar(admin, account, e)["status"] == "connected" for e in account["room_emails"])


def test_each_room_finding_appears_for_its_case(admin, stack, fire):
    account = account_with_calendars(admin, stack, rooms=5, queue=False)
    missing, equipment, hybrid, denied, fine = account["room_emails"]
    set_knobs(stack, account["tenant_id"], missing_mailboxes=[missing], mailbox_purposes={equipment: "equipment"},
              rest_disabled_mailboxes=[hybrid], denied_mailboxes=[denied])
    report = _check(admin, account)
    kinds = {f["room"]: f["kind"] for f in report["findings"] if f["room"]}
    assert kinds == {missing: "room_not_found", equipment: "not_a_room_mailbox", hybrid: "not_reachable_by_graph",
                     denied: "access_denied_by_scope"}
    assert all(f["fix"] for f in report["findings"] if f["room"])
    assert report["counts"]["room_not_found"] == 1 and fine not in kinds


def test_subjects_replaced_by_organizer_names_are_found_from_synced_bookings(admin, stack, fire):
    room = linked_room(admin, stack, fire)
    set_knobs(stack, room["tenant_id"], organizer_as_subject_mailboxes=[room["email"]])
    for hour in (2, 4, 6):
        book(stack, room, "Design review", at(hour), at(hour, 30))
    wait_until(lambda: len(admin.get(f"/api/spaces/{room['space_id']}/bookings").json()["items"]) == 3, timeout=60)
    report = _check(admin, room)
    [finding] = [f for f in report["findings"] if f["kind"] == "subjects_replaced_by_organizer"]
    assert finding["room"] == room["email"] and "AddOrganizerToSubject" in finding["reason"]


def test_the_room_settings_script_covers_the_chosen_rooms(admin, stack):
    account = account_with_calendars(admin, stack, rooms=3, queue=False)
    chosen = account["room_emails"][:2]
    script = admin.get(f"/api/accounts/{account['account_id']}/readiness/room-settings.ps1",
                       params={"rooms": ",".join(chosen), "external": "true"})
    assert script.status_code == 200 and script.headers["Content-Type"].startswith("text/plain")
    for email in chosen:
        assert script.text.count(f"'{email}'") == 1
    assert account["room_emails"][2] not in script.text and "ProcessExternalMeetingMessages = $true" in script.text
    stranger = admin.get(f"/api/accounts/{account['account_id']}/readiness/room-settings.ps1",
                         params={"rooms": "ceo@contoso.com"})
    assert stranger.status_code == 400


def test_discover_shows_what_the_check_found_for_each_room(admin, stack):
    account = verified_account(admin, stack, rooms=2)
    first, second = account["room_emails"]
    set_knobs(stack, account["tenant_id"], rest_disabled_mailboxes=[first])
    _check(admin, account, rooms=[first, second])
    rooms = {r["email"]: r for r in admin.get(f"/api/accounts/{account['account_id']}/rooms").json()["items"]}
    assert [f["kind"] for f in rooms[first]["readiness"]] == ["not_reachable_by_graph"]
    assert rooms[second]["readiness"] == []


def test_removing_an_account_removes_its_readiness_rows(admin, stack, app_context):
    account = account_with_calendars(admin, stack, rooms=3, queue=False)
    _check(admin, account)
    rows = app_context.readiness.records.table
    assert list(rows.query_all("PartitionKey eq @a", parameters={"a": account["account_id"]}))
    assert admin.delete(f"/api/accounts/{account['account_id']}").status_code == 200
    assert list(rows.query_all("PartitionKey eq @a", parameters={"a": account["account_id"]})) == []
