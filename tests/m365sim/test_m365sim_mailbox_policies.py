"""Mailbox policies and limits in m365sim: write-denied mailboxes, a stall after commit, RBAC for
Applications scoped to rooms, mailboxes not enabled for REST, mailboxSettings/userPurpose and
its permission, and Outlook's per-mailbox request budget."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from calendar_support import WINDOW, create, event_body, view, wait_for
from conftest import Sim, Webhook
from test_m365sim_subscriptions import _create as create_subscription


def _stored(sim: Sim, tenant: dict[str, Any], mailbox: str) -> list[dict[str, Any]]:
    return sim.control("GET", f"tenants/{tenant['id']}/mailboxes/{mailbox}/events").json()["value"]


def test_write_denied_mailbox_refuses_writes_but_answers_reads(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    existing = create(sim, token, room)
    sim.knobs(tenant["id"], write_denied_mailboxes=[room.upper()])
    writes = (("POST", "events", event_body()), ("PATCH", f"events/{existing['id']}", {"subject": "x"}),
              ("DELETE", f"events/{existing['id']}", None), ("POST", f"events/{existing['id']}/cancel", {}))
    for method, path, body in writes:
        response = sim.graph(method, f"users/{room}/{path}", token, json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (403, "ErrorAccessDenied"), path
    assert [e["id"] for e in view(sim, token, room)] == [existing["id"]]
    assert create(sim, token, tenant["rooms"][1])["id"]


def test_stall_after_commit_commits_then_answers_late(sim: Sim, tenant: dict[str, Any], webhook: Webhook) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    assert create_subscription(sim, token, room, webhook).status_code == 201
    sim.knobs(tenant["id"], stall_after_commit=1, stall_seconds=3)
    body = event_body(subject="Timed out", transactionId="tx-stall")
    with sim.session() as session, pytest.raises(requests.exceptions.ReadTimeout):
        session.post(f"{sim.base}/v1.0/users/{room}/events", json=body, timeout=1,
                     headers={"Authorization": f"Bearer {token}"})
    # Committed and notified although the client never saw the answer.
    (stored,) = _stored(sim, tenant, room)
    assert stored["subject"] == "Timed out"
    wait_for(lambda: [i for i in webhook.items() if i["resourceData"]["id"] == stored["id"]], message="notification")
    assert sim.control("GET", f"tenants/{tenant['id']}").json()["knobs"]["stall_after_commit"] == 0
    retried = create(sim, token, room, subject="Timed out", transactionId="tx-stall")
    assert retried["id"] == stored["id"] and len(_stored(sim, tenant, room)) == 1


def test_app_scoped_to_rooms_cannot_reach_peoples_mailboxes(sim: Sim, tenant: dict[str, Any],
                                                            webhook: Webhook) -> None:
    token = sim.token(tenant["id"])
    person, room = tenant["user"], tenant["rooms"][0]
    sim.knobs(tenant["id"], app_scope="rooms")
    for path in ("calendar", "events", "mailboxSettings", "calendarView/delta"):
        response = sim.graph("GET", f"users/{person}/{path}", token, params=WINDOW)
        assert response.status_code == 403, path
        assert response.json()["error"]["code"] == "ErrorAccessDenied"
        assert response.json()["error"]["message"] == "Access to OData is disabled."
    assert sim.graph("POST", f"users/{person}/events", token, json=event_body()).status_code == 403
    assert create_subscription(sim, token, person, webhook).status_code == 403
    assert sim.graph("GET", f"users/{person}", token).status_code == 200  # the directory still answers
    assert sim.graph("GET", f"users/{room}/calendarView", token, params=WINDOW).status_code == 200
    assert create_subscription(sim, token, room, webhook).status_code == 201
    sim.knobs(tenant["id"], mailbox_purposes={room: "equipment"})
    assert sim.graph("GET", f"users/{room}/events", token).status_code == 403  # not a RoomMailbox any more


def test_mailbox_not_enabled_for_rest_answers_404_everywhere(sim: Sim, tenant: dict[str, Any],
                                                             webhook: Webhook) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    sim.knobs(tenant["id"], rest_disabled_mailboxes=[room])
    for method, path in (("GET", "calendar"), ("GET", "calendarView"), ("GET", "mailboxSettings"),
                         ("POST", "events")):
        response = sim.graph(method, f"users/{room}/{path}", token, params=WINDOW, json=event_body())
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "MailboxNotEnabledForRESTAPI"
    subscribed = create_subscription(sim, token, room, webhook)
    assert (subscribed.status_code, subscribed.json()["error"]["code"]) == (404, "MailboxNotEnabledForRESTAPI")
    assert webhook.validations == []
    assert sim.graph("GET", f"users/{room}", token).status_code == 200


def test_mailbox_settings_tell_rooms_from_people(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    room, person = tenant["rooms"][0], tenant["user"]
    settings = sim.graph("GET", f"users/{room}/mailboxSettings", token).json()
    assert settings["userPurpose"] == "room"
    assert {"timeZone", "workingHours", "language", "automaticRepliesSetting", "dateFormat"} <= set(settings)
    purpose = sim.graph("GET", f"users/{person}/mailboxSettings/userPurpose", token).json()
    assert purpose["value"] == "user" and purpose["@odata.context"].endswith("/mailboxSettings/userPurpose")
    sim.knobs(tenant["id"], mailbox_purposes={person: "shared"})
    assert sim.graph("GET", f"users/{person}/mailboxSettings/userPurpose", token).json()["value"] == "shared"
    selected = sim.graph("GET", f"users/{room}/mailboxSettings", token, params={"$select": "userPurpose"}).json()
    assert selected["userPurpose"] == "room" and "timeZone" not in selected


def test_mailbox_settings_need_the_mailbox_settings_permission(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    sim.knobs(tenant["id"], missing_permissions=["MailboxSettings.Read"])
    for path in ("mailboxSettings", "mailboxSettings/userPurpose"):
        response = sim.graph("GET", f"users/{room}/{path}", token)
        assert (response.status_code, response.json()["error"]["code"]) == (403, "Authorization_RequestDenied")
    assert sim.graph("GET", f"users/{room}/events", token).status_code == 200


def test_mailbox_request_budget_answers_429_until_the_window_frees(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    room, other = tenant["rooms"][0], tenant["rooms"][1]
    sim.knobs(tenant["id"], mailbox_request_limit=3)
    create(sim, token, room)  # writes count too
    assert sim.graph("GET", f"users/{room}/calendarView", token, params=WINDOW).status_code == 200
    assert sim.graph("GET", f"users/{room}/events", token).status_code == 200
    throttled = sim.graph("GET", f"users/{room}/calendarView", token, params=WINDOW)
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "ApplicationThrottled"
    assert 500 <= int(throttled.headers["Retry-After"]) <= 600
    assert sim.graph("POST", f"users/{room}/events", token, json=event_body()).status_code == 429
    assert sim.graph("GET", f"users/{other}/events", token).status_code == 200  # per mailbox
    assert sim.graph("GET", f"users/{room}", token).status_code == 200  # the directory is not the mailbox
    sim.knobs(tenant["id"], enforce_limits=False)
    assert sim.graph("GET", f"users/{room}/events", token).status_code == 200


def test_knobs_are_validated_all_or_nothing(sim: Sim, tenant: dict[str, Any]) -> None:
    path = f"tenants/{tenant['id']}/knobs"
    for bad in ({"app_scope": "some"}, {"mailbox_purposes": {"a@b.c": "robot"}}, {"stall_after_commit": -1},
                {"notification_drop_rate": 2}, {"mailbox_request_limit": "many"},
                {"write_denied_mailboxes": ["a@b.c"], "notification_max_delay_ms": 1.5}):
        assert sim.control("PATCH", path, json=bad).status_code == 400, bad
    knobs = sim.control("GET", f"tenants/{tenant['id']}").json()["knobs"]
    assert (knobs["write_denied_mailboxes"], knobs["app_scope"], knobs["mailbox_request_limit"]) == ([], "all", 10000)
