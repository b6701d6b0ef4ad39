"""Room calendars of an account through devhost, Azurite and m365sim: add, list,
link, unlink, remove, Connect Calendars, discovery, and the link race."""

from __future__ import annotations

import threading
import uuid
from urllib.parse import quote

import pytest

from tests.flows import verified_account


@pytest.fixture
def account(admin, stack) -> dict:
    return verified_account(admin, stack, rooms=3)


@pytest.fixture
def spaces(admin) -> list[dict]:
    """Three fresh spaces of a building of this test's own."""
    building = f"b-{uuid.uuid4().hex[:8]}"
    rows = [{"id": f"{building}-s{i}", "building_id": building, "building_name": f"Test {building}", "floor": "2",
             "number": f"T-{building[2:]}-{i:03d}", "name": f"Test room {i}", "type": "meeting room",
             "capacity": 4 + i} for i in range(3)]
    imported = admin.post("/api/spaces/import", json={"spaces": rows})
    assert imported.status_code == 200, imported.text
    return rows


def calendar_url(account: dict, email: str = "") -> str:
    base = f"/api/accounts/{account['account_id']}/calendars"
    return f"{base}/{quote(email)}" if email else base


def test_add_one_calendar_normalises_the_email(admin, account) -> None:
    email = account["room_emails"][0]
    added = admin.post(calendar_url(account), json={"email": f"  {email.upper()} "})
    assert added.status_code == 201, added.text
    assert added.json()["email"] == email
    assert added.json()["status"] == "added"
    again = admin.post(calendar_url(account), json={"email": email})
    assert again.status_code == 409
    assert "already added" in again.json()["error"]["message"]


@pytest.mark.parametrize("email", ["a" * 300 + "@contoso.com", "ørchard@contoso.com", '"quoted"@contoso.com',
                                   "no-at-sign", "", None, 7])
def test_bad_emails_are_a_400_and_add_nothing(admin, account, email) -> None:
    response = admin.post(calendar_url(account), json={"email": email})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert admin.get(calendar_url(account)).json()["counts"]["total"] == 0


def test_unknown_account_and_unknown_space_are_404(admin, account) -> None:
    unknown = "00000000-0000-0000-0000-000000000000"
    assert admin.post(f"/api/accounts/{unknown}/calendars", json={"email": "a@b.com"}).status_code == 404
    response = admin.post(calendar_url(account), json={"email": account["room_emails"][0], "space_id": "nope-404"})
    assert response.status_code == 404
    assert admin.get(calendar_url(account)).json()["counts"]["total"] == 0


def test_an_error_message_repeats_only_the_start_of_a_huge_input(admin, account) -> None:
    space_id = "S" * 5000
    looked_up = admin.get(f"/api/spaces/{space_id}")
    linked = admin.post(calendar_url(account), json={"email": account["room_emails"][0], "space_id": space_id})
    for response in (looked_up, linked):
        assert response.status_code in (400, 404), response.text[:300]
        message = response.json()["error"]["message"]
        assert len(message) < 300 and "SSSS" in message, message[:300]


def test_an_unverified_account_takes_no_calendars(admin, stack) -> None:
    from tests.flows import new_sim_tenant

    tenant = new_sim_tenant(stack, rooms=1)
    pending = admin.post("/api/accounts", json={"tenant_id": tenant["domain"]}).json()["account"]
    response = admin.post(f"/api/accounts/{pending['id']}/calendars", json={"email": "room@example.com"})
    assert response.status_code == 409
    assert "authorize it" in response.json()["error"]["message"]


def test_link_unlink_and_linking_a_linked_space(admin, account, spaces) -> None:
    first, second = account["room_emails"][:2]
    admin.post(calendar_url(account), json={"email": first})
    admin.post(calendar_url(account), json={"email": second})
    space = spaces[0]

    linked = admin.put(calendar_url(account, first) + "/space", json={"space_id": space["number"].lower()})
    assert linked.status_code == 200, linked.text
    assert linked.json()["space"]["id"] == space["id"]
    assert admin.get(f"/api/spaces/{space['id']}").json()["linked"]["email"] == first

    taken = admin.put(calendar_url(account, second) + "/space", json={"space_id": space["id"]})
    assert taken.status_code == 409
    assert first in taken.json()["error"]["message"]

    unlinked = admin.delete(calendar_url(account, first) + "/space")
    assert unlinked.status_code == 200 and unlinked.json()["space"] is None
    assert admin.get(f"/api/spaces/{space['id']}").json()["linked"] is None
    assert admin.put(calendar_url(account, second) + "/space", json={"space_id": space["id"]}).status_code == 200


def test_relinking_moves_the_calendar_and_frees_the_old_space(admin, account, spaces) -> None:
    email = account["room_emails"][0]
    admin.post(calendar_url(account), json={"email": email, "space_id": spaces[0]["id"]})
    moved = admin.put(calendar_url(account, email) + "/space", json={"space_id": spaces[1]["id"]})
    assert moved.json()["space"]["id"] == spaces[1]["id"]
    assert admin.get(f"/api/spaces/{spaces[0]['id']}").json()["linked"] is None
    assert admin.get(f"/api/spaces/{spaces[1]['id']}").json()["linked"]["email"] == email


def test_removing_a_linked_calendar_frees_its_space(admin, account, spaces) -> None:
    email = account["room_emails"][0]
    assert admin.post(calendar_url(account), json={"email": email, "space_id": spaces[0]["id"]}).status_code == 201
    removed = admin.delete(calendar_url(account, email))
    assert removed.status_code == 200, removed.text
    assert admin.get(calendar_url(account, email)).status_code == 404
    assert admin.get(f"/api/spaces/{spaces[0]['id']}").json()["linked"] is None


def test_two_admins_linking_one_space_at_once_exactly_one_wins(admin, second_admin, account, spaces) -> None:
    first, second = account["room_emails"][:2]
    admin.post(calendar_url(account), json={"email": first})
    admin.post(calendar_url(account), json={"email": second})
    barrier = threading.Barrier(2)
    results: dict[str, int] = {}

    def link(session, email: str) -> None:
        barrier.wait()
        results[email] = session.put(calendar_url(account, email) + "/space",
                                     json={"space_id": spaces[2]["id"]}).status_code

    threads = [threading.Thread(target=link, args=(admin, first)), threading.Thread(target=link, args=(second_admin,
                                                                                                        second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results.values()) == [200, 409]
    winner = next(email for email, status in results.items() if status == 200)
    assert admin.get(f"/api/spaces/{spaces[2]['id']}").json()["linked"]["email"] == winner
    loser = next(email for email in results if email != winner)
    assert admin.get(calendar_url(account, loser)).json()["space"] is None


def test_paging_across_continuation_tokens_and_filters(admin, account, spaces) -> None:
    emails = [f"room{i:02d}@{account['domain']}" for i in range(23)]
    for email in emails:
        assert admin.post(calendar_url(account), json={"email": email}).status_code == 201
    admin.put(calendar_url(account, emails[0]) + "/space", json={"space_id": spaces[0]["id"]})
    seen: list[str] = []
    token = None
    while True:
        page = admin.get(calendar_url(account), params={"page_size": 10, **({"continuation_token": token}
                                                                             if token else {})}).json()
        seen += [c["email"] for c in page["items"]]
        token = page["continuation_token"]
        if not token:
            break
    assert sorted(seen) == sorted(emails) and len(seen) == len(set(seen))
    assert page["counts"]["total"] == 23 and page["counts"]["added"] == 23 and page["counts"]["linked"] == 1
    linked = admin.get(calendar_url(account), params={"linked": "true"}).json()["items"]
    assert [c["email"] for c in linked] == [emails[0]]
    found = admin.get(calendar_url(account), params={"q": "ROOM1"}).json()["items"]
    assert sorted(c["email"] for c in found) == [e for e in emails if e.startswith("room1")]
    assert admin.get(calendar_url(account), params={"continuation_token": "%%%"}).status_code == 400
    assert admin.get(calendar_url(account), params={"status": "bogus"}).status_code == 400


def test_connect_calendars_queues_added_ones_and_says_when(admin, account) -> None:
    for email in account["room_emails"][:2]:
        admin.post(calendar_url(account), json={"email": email})
    connected = admin.post(calendar_url(account) + "/connect")
    assert connected.status_code == 200, connected.text
    assert connected.json()["queued"] == 2
    assert connected.json()["next_run_at"].endswith("Z")
    counts = admin.get(calendar_url(account)).json()["counts"]
    assert counts["queued"] == 2 and counts["added"] == 0
    assert admin.post(calendar_url(account) + "/connect").json()["queued"] == 0


def test_discovery_walks_every_page_and_room_lists(admin, stack) -> None:
    account = verified_account(admin, stack, rooms=230)
    discovered = admin.get(f"/api/accounts/{account['account_id']}/rooms")
    assert discovered.status_code == 200, discovered.text
    emails = {room["email"] for room in discovered.json()["items"]}
    assert emails == set(account["room_emails"])
    assert admin.post(calendar_url(account), json={"email": account["room_emails"][0]}).status_code == 201
    again = admin.get(f"/api/accounts/{account['account_id']}/rooms")
    assert again.status_code == 200, again.text
    again = again.json()["items"]
    assert [r["email"] for r in again if r["added"]] == [account["room_emails"][0]]


def test_discovered_rooms_are_added_in_one_request(admin, account) -> None:
    rooms = [{"email": email} for email in account["room_emails"]] + [{"email": "bad address"}]
    added = admin.post(calendar_url(account) + "/bulk", json={"rooms": rooms})
    assert added.status_code == 200, added.text
    assert added.json()["added"] == len(account["room_emails"])
    assert [r["ok"] for r in added.json()["results"]][-1] is False


def test_the_audit_log_records_changes_newest_first(admin, account) -> None:
    email = account["room_emails"][0]
    admin.post(calendar_url(account), json={"email": email})
    admin.delete(calendar_url(account, email))
    entries = admin.get("/api/audit", params={"page_size": 20}).json()["items"]
    actions = [(e["action"], e["target"]) for e in entries]
    assert actions.index(("calendar.remove", email)) < actions.index(("calendar.add", email))
