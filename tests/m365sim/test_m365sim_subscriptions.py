"""Subscriptions in m365sim: the validation handshake, limits on lifetime and clientState,
renew/delete/404, the write limit, and change/lifecycle notification delivery."""

from __future__ import annotations

import datetime as dt
from typing import Any

from conftest import Sim, Webhook


def _expires(minutes: int) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def _create(sim: Sim, token: str, mailbox: str, webhook: Webhook, **overrides: Any) -> Any:
    body = {
        "changeType": "created,updated,deleted",
        "notificationUrl": f"{webhook.url}/api/notifications",
        "lifecycleNotificationUrl": f"{webhook.url}/api/lifecycle",
        "resource": f"/users/{mailbox}/events",
        "expirationDateTime": _expires(4000),
        "clientState": "secret-client-state",
        **overrides,
    }
    return sim.graph("POST", "subscriptions", token, json=body)


def test_create_validates_both_urls_then_returns_the_subscription(sim: Sim, tenant: dict[str, Any],
                                                                  webhook: Webhook) -> None:
    token = sim.token(tenant["id"])
    response = _create(sim, token, tenant["rooms"][0], webhook)
    assert response.status_code == 201, response.text
    created = response.json()
    assert [p.split("?")[0] for p in webhook.validations] == ["/api/notifications", "/api/lifecycle"]
    assert created["clientState"] == "secret-client-state"
    assert created["applicationId"] == sim.client_id
    assert created["resource"] == f"/users/{tenant['rooms'][0]}/events"
    assert {"id", "changeType", "notificationUrl", "lifecycleNotificationUrl", "expirationDateTime",
            "creatorId"} <= set(created)
    fetched = sim.graph("GET", f"subscriptions/{created['id']}", token).json()
    assert fetched["id"] == created["id"]
    listed = sim.control("GET", "subscriptions", params={"tenant": tenant["id"]}).json()["value"]
    assert [s["clientState"] for s in listed] == ["secret-client-state"]


def test_resource_without_leading_slash_is_accepted(sim: Sim, tenant: dict[str, Any], webhook: Webhook) -> None:
    token = sim.token(tenant["id"])
    user_id = sim.graph("GET", f"users/{tenant['rooms'][0]}", token).json()["id"]
    assert _create(sim, token, user_id, webhook, resource=f"users/{user_id}/events").status_code == 201


def test_wrong_handshake_answers_fail_validation_and_create_nothing(sim: Sim, tenant: dict[str, Any],
                                                                   webhook: Webhook) -> None:
    token = sim.token(tenant["id"])
    for mode in ("wrong", "json"):
        webhook.mode = mode
        response = _create(sim, token, tenant["rooms"][0], webhook)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "ValidationError"
        assert response.json()["error"]["message"].startswith("Subscription validation request failed")
    assert sim.control("GET", "subscriptions", params={"tenant": tenant["id"]}).json()["value"] == []


def test_unreachable_notification_url_fails_validation(sim: Sim, tenant: dict[str, Any], webhook: Webhook) -> None:
    token = sim.token(tenant["id"])
    response = _create(sim, token, tenant["rooms"][0], webhook, notificationUrl="http://127.0.0.1:9/nothing")
    assert response.json()["error"]["code"] == "ValidationError"


def test_bad_subscription_requests_are_refused(sim: Sim, tenant: dict[str, Any], webhook: Webhook) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    assert _create(sim, token, room, webhook, expirationDateTime=_expires(10081)).status_code == 400
    assert _create(sim, token, room, webhook, clientState="x" * 129).status_code == 400
    assert _create(sim, token, room, webhook, notificationUrl="http://example.com/hook").status_code == 400
    assert _create(sim, token, room, webhook, changeType="moved").status_code == 400
    assert _create(sim, token, room, webhook, clientState="x" * 128).status_code == 201


def test_missing_and_denied_mailboxes(sim: Sim, tenant: dict[str, Any], webhook: Webhook) -> None:
    token = sim.token(tenant["id"])
    assert _create(sim, token, f"nobody@{tenant['domain']}", webhook).status_code == 404
    sim.knobs(tenant["id"], denied_mailboxes=[tenant["rooms"][0]])
    denied = _create(sim, token, tenant["rooms"][0], webhook)
    assert denied.status_code == 403
    assert denied.json()["error"] == {**denied.json()["error"], "code": "ErrorAccessDenied",
                                      "message": "Access to OData is disabled."}
    assert webhook.validations == []


def test_renew_delete_and_404_when_gone(sim: Sim, tenant: dict[str, Any], webhook: Webhook) -> None:
    token = sim.token(tenant["id"])
    subscription_id = _create(sim, token, tenant["rooms"][0], webhook).json()["id"]
    new_expiry = _expires(10000)
    renewed = sim.graph("PATCH", f"subscriptions/{subscription_id}", token, json={"expirationDateTime": new_expiry})
    assert renewed.status_code == 200
    assert renewed.json()["expirationDateTime"][:16] == new_expiry[:16]
    too_long = sim.graph("PATCH", f"subscriptions/{subscription_id}", token,
                         json={"expirationDateTime": _expires(20000)})
    assert too_long.status_code == 400
    assert sim.graph("POST", f"subscriptions/{subscription_id}/reauthorize", token).status_code in (200, 204)
    assert sim.graph("DELETE", f"subscriptions/{subscription_id}", token).status_code == 204
    assert sim.graph("DELETE", f"subscriptions/{subscription_id}", token).status_code == 404
    assert sim.graph("GET", f"subscriptions/{subscription_id}", token).status_code == 404
    gone = sim.graph("PATCH", f"subscriptions/{subscription_id}", token, json={"expirationDateTime": new_expiry})
    assert gone.status_code == 404


def test_silently_dropped_subscription_is_404(sim: Sim, tenant: dict[str, Any], webhook: Webhook) -> None:
    token = sim.token(tenant["id"])
    subscription_id = _create(sim, token, tenant["rooms"][0], webhook).json()["id"]
    assert sim.control("DELETE", f"subscriptions/{subscription_id}").status_code == 204
    assert sim.graph("GET", f"subscriptions/{subscription_id}", token).status_code == 404


def test_list_subscriptions_pages_at_100(sim: Sim, tenant: dict[str, Any], webhook: Webhook) -> None:
    token = sim.token(tenant["id"])
    for _ in range(101):
        assert _create(sim, token, tenant["rooms"][0], webhook, lifecycleNotificationUrl=None).status_code == 201
    first = sim.graph("GET", "subscriptions", token).json()
    assert len(first["value"]) == 100
    second = sim.graph("GET", first["@odata.nextLink"], token).json()
    assert len(second["value"]) == 1 and "@odata.nextLink" not in second


def test_subscription_writes_over_the_limit_get_429_with_retry_after(sim: Sim, tenant: dict[str, Any],
                                                                     webhook: Webhook) -> None:
    token = sim.token(tenant["id"])
    sim.knobs(tenant["id"], subscription_write_limit=5)
    statuses = [_create(sim, token, tenant["rooms"][0], webhook).status_code for _ in range(5)]
    assert statuses == [201] * 5
    throttled = _create(sim, token, tenant["rooms"][0], webhook)
    assert throttled.status_code == 429
    assert 1 <= int(throttled.headers["Retry-After"]) <= 20
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    log = sim.control("GET", "requests", params={"tenant": tenant["id"]}).json()["value"]
    assert log[-1]["status"] == 429 and log[-1]["retry_after"] == int(throttled.headers["Retry-After"])
    assert sim.graph("GET", "subscriptions", token).status_code == 200  # reads are not writes


def test_notify_delivers_a_change_notification_in_graphs_shape(sim: Sim, tenant: dict[str, Any],
                                                                webhook: Webhook) -> None:
    token = sim.token(tenant["id"])
    subscription = _create(sim, token, tenant["rooms"][0], webhook).json()
    result = sim.control("POST", f"subscriptions/{subscription['id']}/notify",
                         json={"changeType": "updated", "eventId": "AAMkEvent1"}).json()
    assert result["status"] == 202
    (delivered,) = webhook.notifications
    assert delivered["path"] == "/api/notifications"
    (item,) = delivered["body"]["value"]
    user_id = sim.graph("GET", f"users/{tenant['rooms'][0]}", token).json()["id"]
    assert item["subscriptionId"] == subscription["id"]
    assert item["clientState"] == "secret-client-state"
    assert item["tenantId"] == tenant["id"]
    assert item["changeType"] == "updated"
    assert item["resource"] == f"Users/{user_id}/Events/AAMkEvent1"
    assert item["resourceData"]["id"] == "AAMkEvent1"
    assert item["resourceData"]["@odata.type"] == "#Microsoft.Graph.Event"
    assert item["subscriptionExpirationDateTime"].endswith("Z")


def test_lifecycle_events_are_delivered_and_removed_deletes(sim: Sim, tenant: dict[str, Any],
                                                            webhook: Webhook) -> None:
    token = sim.token(tenant["id"])
    subscription_id = _create(sim, token, tenant["rooms"][0], webhook).json()["id"]
    for event in ("reauthorizationRequired", "missed", "subscriptionRemoved"):
        result = sim.control("POST", f"subscriptions/{subscription_id}/lifecycle", json={"lifecycleEvent": event})
        assert result.json()["status"] == 202
    assert [n["body"]["value"][0]["lifecycleEvent"] for n in webhook.notifications] == [
        "reauthorizationRequired", "missed", "subscriptionRemoved"]
    assert {n["path"] for n in webhook.notifications} == {"/api/lifecycle"}
    assert webhook.notifications[0]["body"]["value"][0]["clientState"] == "secret-client-state"
    assert sim.graph("GET", f"subscriptions/{subscription_id}", token).status_code == 404
