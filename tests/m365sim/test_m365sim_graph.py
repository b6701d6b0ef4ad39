"""Graph behaviour of m365sim: auth, permissions, users, places paging, mailbox policy knobs,
$batch, throttling and the per-mailbox concurrency limit."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from conftest import CONTOSO_ID, Sim


def _all_pages(sim: Sim, token: str, path: str) -> tuple[list[dict[str, Any]], int]:
    items: list[dict[str, Any]] = []
    url, pages = path, 0
    while url:
        response = sim.graph("GET", url, token)
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["value"])
        pages += 1
        url = body.get("@odata.nextLink")
        if url:
            assert url.startswith(sim.base + "/v1.0/") and "$skiptoken" in url.replace("%24", "$")
    return items, pages


def test_graph_refuses_missing_and_forged_tokens(sim: Sim, tenant: dict[str, Any]) -> None:
    assert sim.graph("GET", "users", "").json()["error"]["code"] == "InvalidAuthenticationToken"
    token = sim.token(tenant["id"])
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    response = sim.graph("GET", "users", forged)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_existing_token_fails_after_consent_is_revoked(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    assert sim.graph("GET", "users", token).status_code == 200
    sim.control("POST", f"tenants/{tenant['id']}/consent", json={"granted": False})
    assert sim.graph("GET", "users", token).status_code == 401


def test_places_pages_through_every_room(sim: Sim, new_tenant: Any) -> None:
    big = new_tenant(rooms=250)
    token = sim.token(big["id"])
    rooms, pages = _all_pages(sim, token, "places/microsoft.graph.room")
    assert pages == 3
    assert sorted(r["emailAddress"] for r in rooms) == sorted(big["rooms"])
    assert {"id", "emailAddress", "displayName", "building", "floorNumber", "floorLabel", "capacity", "bookingType",
            "isWheelChairAccessible", "tags", "nickname"} <= set(rooms[0])
    small_pages = _all_pages(sim, token, "places/microsoft.graph.room?$top=40")[1]
    assert small_pages == 7


def test_rooms_hidden_from_places_are_found_through_room_lists(sim: Sim) -> None:
    sim.control("POST", f"tenants/{CONTOSO_ID}/consent", json={"granted": True})
    token = sim.token(CONTOSO_ID)
    listed = {r["emailAddress"] for r in _all_pages(sim, token, "places/microsoft.graph.room")[0]}
    assert "orchard@contoso.onmicrosoft.com" in listed
    assert "bugis@contoso.onmicrosoft.com" not in listed
    walked: set[str] = set()
    for room_list in _all_pages(sim, token, "places/microsoft.graph.roomlist")[0]:
        walked |= {r["emailAddress"] for r in
                   _all_pages(sim, token, f"places/{room_list['emailAddress']}/microsoft.graph.roomlist/rooms")[0]}
    assert {"bugis@contoso.onmicrosoft.com", "holland@contoso.onmicrosoft.com"} <= walked
    assert "changi@contoso.onmicrosoft.com" not in walked  # in no room list, but in /places
    assert "changi@contoso.onmicrosoft.com" in listed


def test_users_by_upn_and_id_and_404(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    by_upn = sim.graph("GET", f"users/{room}", token).json()
    assert by_upn["mail"] == room
    assert sim.graph("GET", f"users/{by_upn['id']}", token).json()["userPrincipalName"] == room
    missing = sim.graph("GET", f"users/nobody@{tenant['domain']}", token)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "Request_ResourceNotFound")
    users, _ = _all_pages(sim, token, "users?$top=2")
    assert len(users) == len(tenant["rooms"]) + 2  # admin@ and user@ besides the room mailboxes


@pytest.mark.parametrize(
    ("missing", "path"),
    [("Place.Read.All", "places/microsoft.graph.room"), ("User.Read.All", "users"),
     ("Calendars.ReadWrite", "users/{room}/events")],
)
def test_missing_permission_is_insufficient_privileges(sim: Sim, tenant: dict[str, Any], missing: str,
                                                        path: str) -> None:
    token = sim.token(tenant["id"])
    url = path.format(room=tenant["rooms"][0])
    assert sim.graph("GET", url, token).status_code == 200
    sim.knobs(tenant["id"], missing_permissions=[missing])
    response = sim.graph("GET", url, token)
    assert response.status_code == 403
    assert response.json()["error"] == {**response.json()["error"], "code": "Authorization_RequestDenied",
                                        "message": "Insufficient privileges to complete the operation."}


def test_denied_and_missing_mailboxes(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    denied, missing = tenant["rooms"][0], tenant["rooms"][1]
    sim.knobs(tenant["id"], denied_mailboxes=[denied], missing_mailboxes=[missing])
    for suffix in ("calendar", "events"):
        response = sim.graph("GET", f"users/{denied}/{suffix}", token)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "ErrorAccessDenied"
        assert response.json()["error"]["message"] == "Access to OData is disabled."
        assert sim.graph("GET", f"users/{missing}/{suffix}", token).status_code == 404
    assert sim.graph("GET", f"users/{missing}", token).status_code == 404
    assert sim.graph("GET", f"users/{tenant['rooms'][2]}/calendar", token).status_code == 200


def test_batch_runs_each_item_as_a_request(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    requests_ = [
        {"id": "1", "method": "GET", "url": f"/users/{tenant['rooms'][0]}"},
        {"id": "2", "method": "GET", "url": f"users/nobody@{tenant['domain']}"},
        {"id": "3", "method": "GET", "url": "/places/microsoft.graph.room?$top=2"},
    ]
    response = sim.graph("POST", "$batch", token, json={"requests": requests_})
    assert response.status_code == 200
    statuses = {item["id"]: item["status"] for item in response.json()["responses"]}
    assert statuses == {"1": 200, "2": 404, "3": 200}
    log = sim.control("GET", "requests", params={"tenant": tenant["id"]}).json()["value"]
    assert sum(1 for e in log if e["kind"] == "graph-batch-item") == 3


def test_batch_limits(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    too_many = [{"id": str(i), "method": "GET", "url": "/users"} for i in range(21)]
    assert sim.graph("POST", "$batch", token, json={"requests": too_many}).status_code == 400
    duplicate = [{"id": "1", "method": "GET", "url": "/users"}] * 2
    assert sim.graph("POST", "$batch", token, json={"requests": duplicate}).status_code == 400
    no_content_type = [{"id": "1", "method": "POST", "url": "/subscriptions", "body": {}}]
    assert sim.graph("POST", "$batch", token, json={"requests": no_content_type}).status_code == 400


def test_batch_items_are_throttled_on_their_own(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    sim.knobs(tenant["id"], throttle_rate=1.0, retry_after_seconds=7)
    response = sim.graph("POST", "$batch", token, json={"requests": [{"id": "a", "method": "GET", "url": "/users"}]})
    assert response.status_code == 200
    (item,) = response.json()["responses"]
    assert (item["status"], item["headers"]["Retry-After"]) == (429, "7")
    assert item["body"]["error"]["code"] == "TooManyRequests"


def test_subscription_write_limit_applies_to_batch_items(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    sim.knobs(tenant["id"], subscription_write_limit=1)
    missing = "00000000-0000-0000-0000-0000000000aa"
    items = [{"id": str(i), "method": "DELETE", "url": f"/subscriptions/{missing}"} for i in range(2)]
    response = sim.graph("POST", "$batch", token, json={"requests": items})
    # Items of a batch run concurrently, so either one may take the window's only write.
    by_status = {r["status"]: r for r in response.json()["responses"]}
    assert sorted(by_status) == [404, 429]
    assert int(by_status[429]["headers"]["Retry-After"]) >= 1


def test_throttle_knob_answers_429_with_retry_after_and_logs_it(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    since = max([e["seq"] for e in sim.control("GET", "requests").json()["value"]], default=0)
    sim.knobs(tenant["id"], throttle_rate=1.0, retry_after_seconds=3)
    response = sim.graph("GET", "users", token)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert response.json()["error"]["code"] == "TooManyRequests"
    log = sim.control("GET", "requests", params={"tenant": tenant["id"], "since": since}).json()["value"]
    assert [(e["status"], e["retry_after"]) for e in log if e["kind"] == "graph"] == [(429, 3)]
    sim.knobs(tenant["id"], throttle_rate=0.0, graph_5xx_rate=1.0)
    failed = sim.graph("GET", "users", token)
    assert failed.status_code == 503 and "Retry-After" in failed.headers


def _concurrent_events(sim: Sim, token: str, mailbox: str, count: int) -> list[int]:
    barrier = threading.Barrier(count)
    statuses: list[int] = []
    lock = threading.Lock()

    def call() -> None:
        barrier.wait()
        status = sim.graph("GET", f"users/{mailbox}/events", token).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=call) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


def test_more_than_four_concurrent_requests_to_one_mailbox_are_throttled(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    sim.knobs(tenant["id"], latency_ms=1500)
    statuses = _concurrent_events(sim, token, tenant["rooms"][0], 8)
    assert len(statuses) == 8
    assert 429 in statuses
    assert set(statuses) <= {200, 429}


def test_concurrency_limit_is_off_when_limits_are_not_enforced(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    sim.knobs(tenant["id"], latency_ms=300, enforce_limits=False)
    assert _concurrent_events(sim, token, tenant["rooms"][0], 8) == [200] * 8
