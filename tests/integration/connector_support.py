"""What the connector and webhook tests share: a verified account with queued calendars,
m365sim's control API (knobs, subscriptions, request log, deliveries), the changes queue."""

from __future__ import annotations

import json
from typing import Any

import requests
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from tests.flows import verified_account


def sim(stack: Any, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, f"{stack.sim_url}/_sim/{path.lstrip('/')}", verify=stack.ca_bundle,
                            timeout=60, **kwargs)


def set_knobs(stack: Any, tenant_id: str, **knobs: Any) -> None:
    response = sim(stack, "PATCH", f"tenants/{tenant_id}/knobs", json=knobs)
    assert response.status_code == 200, response.text


def sim_subscriptions(stack: Any, tenant_id: str) -> list[dict[str, Any]]:
    response = sim(stack, "GET", "subscriptions", params={"tenant": tenant_id})
    assert response.status_code == 200, response.text
    return response.json()["value"]


def sim_requests(stack: Any, tenant_id: str, since: int = 0) -> list[dict[str, Any]]:
    response = sim(stack, "GET", "requests", params={"tenant": tenant_id, "since": str(since)})
    assert response.status_code == 200, response.text
    return response.json()["value"]


def last_seq(stack: Any) -> int:
    entries = sim(stack, "GET", "requests", params={"since": "0"}).json()["value"]
    return max((e["seq"] for e in entries), default=0)


def account_with_calendars(admin: Any, stack: Any, rooms: int = 2, queue: bool = True) -> dict[str, Any]:
    """A verified account with `rooms` rooms added (and queued for connection)."""
    account = verified_account(admin, stack, rooms=rooms)
    for email in account["room_emails"]:
        response = admin.post(f"/api/accounts/{account['account_id']}/calendars", json={"email": email})
        assert response.status_code == 201, response.text
    if queue:
        queued = admin.post(f"/api/accounts/{account['account_id']}/calendars/connect")
        assert queued.status_code == 200, queued.text
        assert queued.json()["queued"] == rooms
    return account


def calendar(admin: Any, account: dict[str, Any], email: str) -> dict[str, Any]:
    response = admin.get(f"/api/accounts/{account['account_id']}/calendars/{email}")
    assert response.status_code == 200, response.text
    return response.json()


def add_and_queue(admin: Any, account: dict[str, Any], email: str) -> None:
    response = admin.post(f"/api/accounts/{account['account_id']}/calendars", json={"email": email})
    assert response.status_code == 201, response.text
    queued = admin.post(f"/api/accounts/{account['account_id']}/calendars/connect")
    assert queued.status_code == 200, queued.text


def changes_queue(stack: Any) -> QueueClient:
    return QueueClient.from_connection_string(stack.storage_connection_string, "calendar-changes",
                                              message_decode_policy=TextBase64DecodePolicy())


def take_messages(stack: Any, account_id: str) -> list[dict[str, Any]]:
    """Messages of this account on `calendar-changes` (removed); others' become visible again."""
    queue = changes_queue(stack)
    found = []
    for message in queue.receive_messages(messages_per_page=32, visibility_timeout=1):
        body = json.loads(message.content)
        if body.get("account_id") == account_id:
            found.append(body)
            queue.delete_message(message)
    return found


def connector_with_short_leases(context: Any, lease_seconds: float, renew_every_seconds: float) -> Any:
    """The app's connector, built from the same parts, with leases and renewals short enough
    for a test to see them lapse or be renewed."""
    from datetime import timedelta

    from shared.connector import Connector

    return Connector(calendars=context.calendars.calendars, account_service=context.accounts, graph=context.graph,
                     subscriptions=context.connector.subscriptions, index=context.connector.subscriber.index,
                     runs=context.connector.runs, signing_key=context.settings.state_signing_key,
                     time_limit_seconds=context.connector.time_limit_seconds,
                     lease=timedelta(seconds=lease_seconds), renew_every=timedelta(seconds=renew_every_seconds))
