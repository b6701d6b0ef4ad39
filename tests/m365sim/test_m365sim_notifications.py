"""Change notifications from real changes in m365sim: Graph's own writes and bookings made
through the control API notify live subscriptions in Graph's shape, batched, retried, and as
unreliable as the knobs say; the delivery log records each one."""

from __future__ import annotations

from typing import Any

from calendar_support import create, event_body, wait_for
from conftest import Sim, Webhook
from test_m365sim_subscriptions import _create as create_subscription


def _log(sim: Sim, tenant: dict[str, Any], since: int = 0) -> list[dict[str, Any]]:
    response = sim.control("GET", "notifications", params={"tenant": tenant["id"], "since": str(since)})
    assert response.status_code == 200
    return response.json()["value"]


def _delivered(webhook: Webhook, count: int) -> list[dict[str, Any]]:
    return wait_for(lambda: webhook.items() if len(webhook.items()) >= count else None,
                    message=f"{count} notifications")


def test_graph_writes_notify_each_matching_subscription(sim: Sim, tenant: dict[str, Any], webhook: Webhook) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    user_id = sim.graph("GET", f"users/{room}", token).json()["id"]
    everything = create_subscription(sim, token, room, webhook).json()
    deletes = create_subscription(sim, token, user_id, webhook, changeType="deleted", clientState="deletes",
                                  resource=f"/users/{user_id}/events").json()
    event = create(sim, token, room)
    sim.graph("PATCH", f"users/{room}/events/{event['id']}", token, json={"subject": "changed"})
    sim.graph("DELETE", f"users/{room}/events/{event['id']}", token)
    items = _delivered(webhook, 4)
    assert sorted((i["subscriptionId"], i["changeType"]) for i in items) == sorted([
        (everything["id"], "created"), (everything["id"], "updated"), (everything["id"], "deleted"),
        (deletes["id"], "deleted")])
    created = next(i for i in items if i["changeType"] == "created")
    assert created["resource"] == f"Users/{user_id}/Events/{event['id']}"
    assert created["resourceData"] == {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": created["resource"],
                                       "@odata.etag": f'W/"{event["changeKey"]}"', "id": event["id"]}
    assert (created["clientState"], created["tenantId"]) == ("secret-client-state", tenant["id"])
    assert created["subscriptionExpirationDateTime"].endswith("Z")
    assert {n["path"] for n in webhook.notifications} == {"/api/notifications"}
    log = _log(sim, tenant)
    assert len(log) == 4 and {e["status"] for e in log} == {202} and {e["attempts"] for e in log} == {1}
    assert {"seq", "tenant", "subscriptionId", "changeType", "eventId", "url", "dropped", "duplicated"} <= set(log[0])


def test_a_booking_from_outlook_is_stored_as_an_invitation_and_notified(sim: Sim, tenant: dict[str, Any],
                                                                        webhook: Webhook) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    create_subscription(sim, token, room, webhook)
    booked = sim.control("POST", f"tenants/{tenant['id']}/mailboxes/{room}/events",
                         json=event_body(subject="Quarterly", transactionId="outlook-1"))
    assert booked.status_code == 201, booked.text
    event = booked.json()
    assert event["organizer"]["emailAddress"]["address"] == tenant["user"]
    assert (event["isOrganizer"], event["responseStatus"]["response"]) == (False, "accepted")
    assert {"type": "resource", "address": room} in [
        {"type": a["type"], "address": a["emailAddress"]["address"]} for a in event["attendees"]]
    (item,) = _delivered(webhook, 1)
    assert (item["changeType"], item["resourceData"]["id"]) == ("created", event["id"])
    moved = sim.control("PATCH", f"tenants/{tenant['id']}/mailboxes/{room}/events/{event['id']}",
                        json={"subject": "Quarterly (moved)"})
    assert moved.status_code == 200 and moved.json()["subject"] == "Quarterly (moved)"
    assert sim.control("DELETE", f"tenants/{tenant['id']}/mailboxes/{room}/events/{event['id']}").status_code == 204
    assert [i["changeType"] for i in _delivered(webhook, 3)][1:] in (["updated", "deleted"], ["deleted", "updated"])
    assert sim.control("GET", f"tenants/{tenant['id']}/mailboxes/{room}/events").json()["value"] == []


def test_a_room_that_puts_the_organizer_in_the_subject(sim: Sim, tenant: dict[str, Any]) -> None:
    room = tenant["rooms"][0]
    sim.knobs(tenant["id"], organizer_as_subject_mailboxes=[room])
    organizer = {"emailAddress": {"name": "Ada Lovelace", "address": f"ada@{tenant['domain']}"}}
    booked = sim.control("POST", f"tenants/{tenant['id']}/mailboxes/{room}/events",
                         json={**event_body(subject="Secret project"), "organizer": organizer}).json()
    assert booked["subject"] == "Ada Lovelace"
    assert booked["organizer"] == organizer
    token = sim.token(tenant["id"])
    own = create(sim, token, room, subject="Written through Graph")
    assert own["subject"] == "Written through Graph"  # the rule applies to invitations, not the app's writes


def test_a_retried_create_does_not_notify_again(sim: Sim, tenant: dict[str, Any], webhook: Webhook) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    create_subscription(sim, token, room, webhook)
    first = create(sim, token, room, transactionId="tx-1")
    create(sim, token, room, transactionId="tx-1")
    marker = create(sim, token, room, subject="marker")
    items = _delivered(webhook, 2)
    assert [i["resourceData"]["id"] for i in items if i["changeType"] == "created"].count(first["id"]) == 1
    wait_for(lambda: any(i["resourceData"]["id"] == marker["id"] for i in webhook.items()), message="marker")
    assert len([e for e in _log(sim, tenant) if e["eventId"] == first["id"]]) == 1


def test_notifications_queued_together_go_in_one_post(sim: Sim, tenant: dict[str, Any], webhook: Webhook) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    create_subscription(sim, token, room, webhook)
    bulk = sim.control("POST", f"tenants/{tenant['id']}/events/bulk", json={
        "notify": True, "mailboxes": {room: [event_body(subject=f"b{i}") for i in range(6)]}})
    assert bulk.json() == {"created": 6}
    assert len(_delivered(webhook, 6)) == 6
    assert len(webhook.notifications) < 6
    assert max(len(post["body"]["value"]) for post in webhook.notifications) > 1


def test_failed_deliveries_are_retried_until_answered(sim: Sim, tenant: dict[str, Any], webhook: Webhook) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    create_subscription(sim, token, room, webhook)
    webhook.failures = 2
    event = create(sim, token, room)
    (item,) = _delivered(webhook, 1)
    assert item["resourceData"]["id"] == event["id"]
    assert len(webhook.refused) == 2
    (entry,) = wait_for(lambda: [e for e in _log(sim, tenant) if e["status"] == 202], message="logged delivery")
    assert entry["attempts"] == 3


def test_drop_and_duplicate_knobs(sim: Sim, tenant: dict[str, Any], webhook: Webhook) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    create_subscription(sim, token, room, webhook)
    sim.knobs(tenant["id"], notification_drop_rate=1.0)
    dropped = create(sim, token, room, subject="dropped")
    (entry,) = _log(sim, tenant)
    assert (entry["eventId"], entry["dropped"], entry["status"], entry["attempts"]) == (dropped["id"], True, None, 0)
    sim.knobs(tenant["id"], notification_drop_rate=0.0, notification_duplicate_rate=1.0,
              notification_max_delay_ms=200)
    twice = create(sim, token, room, subject="twice")
    items = _delivered(webhook, 2)
    assert [i["resourceData"]["id"] for i in items] == [twice["id"], twice["id"]]
    log = _log(sim, tenant, since=entry["seq"])
    assert sorted(e["duplicated"] for e in log) == [False, True]


def test_reset_clears_events_delta_state_and_the_delivery_log(sim: Sim, tenant: dict[str, Any],
                                                               webhook: Webhook) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    create_subscription(sim, token, room, webhook)
    create(sim, token, room)
    wait_for(lambda: _log(sim, tenant), message="a logged notification")
    assert sim.control("POST", "reset").status_code == 200
    assert sim.control("GET", "notifications").json()["value"] == []
    assert sim.control("GET", f"tenants/{tenant['id']}").status_code == 404
