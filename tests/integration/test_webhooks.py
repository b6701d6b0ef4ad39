"""Graph's webhooks through devhost: the validation handshake, change notifications with good
and bad clientState, malformed and huge bodies, and each lifecycle event."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import pytest
from azure.data.tables import TableClient

from devhost.stack import Stack
from shared.calendars import CalendarRepository
from shared.context import AppContext
from shared.models import CalendarStatus
from shared.notifications import NotificationInbox, SubscriptionIndex, client_state_hash
from shared.settings import Settings
from shared.storage import Table
from tests.conftest import ADMIN_USER, ApiSession, firing, signed_in_session
from tests.integration.connector_support import (
    account_with_calendars,
    calendar,
    last_seq,
    sim,
    sim_requests,
    sim_subscriptions,
    take_messages,
)


# These tests read the calendar-changes queue themselves, so its consumer is off on their stack
# (the host's own switch, AzureWebJobs.<function>.Disabled): what the webhook queued stays there.
@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack.start(in_memory=True, free_ports=True, with_sim=True,
                     extra_env={"AzureWebJobs.sync_changes.Disabled": "true"}) as running:
        yield running


@pytest.fixture(scope="module")
def admin(stack: Stack) -> ApiSession:
    return signed_in_session(stack.base_url, ADMIN_USER, ["administrator"])


@pytest.fixture(scope="module")
def anonymous(stack: Stack) -> ApiSession:
    return ApiSession(stack.base_url)


@pytest.fixture(scope="module")
def fire(stack: Stack) -> Callable[..., dict]:
    return firing(stack.base_url)


@pytest.fixture(scope="module")
def app_context(stack: Stack) -> AppContext:
    return AppContext.build(Settings.from_environment(stack.env))


@pytest.fixture
def connected(admin, stack, fire, app_context):
    """A verified account with one connected room; its subscription as m365sim has it."""
    account = account_with_calendars(admin, stack, rooms=1)
    fire("connector_run")
    email = account["room_emails"][0]
    room = app_context.calendars.calendars.get(account["account_id"], email)
    assert room.status is CalendarStatus.CONNECTED
    subscription = next(s for s in sim_subscriptions(stack, account["tenant_id"]) if s["id"] == room.subscription_id)
    return {**account, "email": email, "subscription": subscription}


@pytest.mark.parametrize("path", ["/api/notifications", "/api/notifications/lifecycle"])
def test_the_validation_handshake_echoes_the_decoded_token(anonymous, path):
    token = "Validation: Testing client application reachability for subscription Request-Id: 1b2c&x=y"
    response = anonymous.post(path, params={"validationToken": token}, data=b"")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.text == token


def test_a_notification_with_the_right_client_state_is_queued(admin, stack, connected, app_context):
    take_messages(stack, connected["account_id"])
    delivery = sim(stack, "POST", f"subscriptions/{connected['subscription']['id']}/notify",
                   json={"changeType": "updated", "eventId": "AAMkAGI2event1"})
    assert delivery.status_code == 200, delivery.text
    assert delivery.json()["status"] == 202
    messages = take_messages(stack, connected["account_id"])
    assert len(messages) == 1
    message = messages[0]
    assert message["room_email"] == connected["email"]
    assert message["change_type"] == "updated" and message["change_types"] == ["updated"]
    assert message["subscription_id"] == connected["subscription"]["id"]
    assert "space_id" in message
    assert calendar(admin, connected, connected["email"])["last_notification_at"]


def _notification(subscription: dict, client_state: str, tenant_id: str) -> dict:
    return {"value": [{
        "subscriptionId": subscription["id"], "clientState": client_state, "changeType": "created",
        "resource": "Users/x/Events/AAMkAGI2evil", "tenantId": tenant_id,
        "resourceData": {"id": "AAMkAGI2evil"}, "subscriptionExpirationDateTime": "2030-01-01T00:00:00Z"}]}


def test_a_notification_with_a_wrong_client_state_is_dropped(anonymous, admin, stack, connected):
    take_messages(stack, connected["account_id"])
    forged = _notification(connected["subscription"], "guessed-secret", connected["tenant_id"])
    response = anonymous.post("/api/notifications", json=forged)
    assert response.status_code == 202
    missing = _notification(connected["subscription"], None, connected["tenant_id"])
    assert anonymous.post("/api/notifications", json=missing).status_code == 202
    unknown = _notification({"id": "00000000-0000-0000-0000-000000000000"}, "x", connected["tenant_id"])
    assert anonymous.post("/api/notifications", json=unknown).status_code == 202
    assert take_messages(stack, connected["account_id"]) == []
    assert calendar(admin, connected, connected["email"])["last_notification_at"] is None


def test_a_notification_naming_another_tenant_or_none_is_dropped(anonymous, admin, stack, connected):
    take_messages(stack, connected["account_id"])
    right_secret = connected["subscription"]["clientState"]
    assert right_secret
    for tenant_id in ("11111111-2222-3333-4444-555555555555", None):
        body = _notification(connected["subscription"], right_secret, tenant_id)
        assert anonymous.post("/api/notifications", json=body).status_code == 202
    assert take_messages(stack, connected["account_id"]) == []
    # The same item naming the account's own tenant is taken.
    assert anonymous.post("/api/notifications", json=_notification(
        connected["subscription"], right_secret, connected["tenant_id"])).status_code == 202
    assert len(take_messages(stack, connected["account_id"])) == 1


def test_malformed_and_huge_bodies_are_rejected_without_effect(anonymous, stack, connected):
    take_messages(stack, connected["account_id"])
    for path in ("/api/notifications", "/api/notifications/lifecycle"):
        assert anonymous.post(path, data=b"{not json", headers={"Content-Type": "application/json"}
                              ).status_code == 400
        assert anonymous.post(path, json=["value"]).status_code == 400
        assert anonymous.post(path, json={"value": "x"}).status_code == 400
        huge = b'{"value": [' + b'{"a": "' + b"x" * (2 * 1024 * 1024) + b'"}]}'
        assert anonymous.post(path, data=huge, headers={"Content-Type": "application/json"}).status_code == 413
    assert anonymous.post("/api/notifications", json={"value": [1, "x", None, {"subscriptionId": 5}]}
                          ).status_code == 202
    assert take_messages(stack, connected["account_id"]) == []


def test_a_deeply_nested_body_is_a_400_not_a_server_error(anonymous, stack, connected):
    take_messages(stack, connected["account_id"])
    for path in ("/api/notifications", "/api/notifications/lifecycle"):
        for body in (b"[" * 200_000, b'{"value": [' + b"[" * 200_000):
            response = anonymous.post(path, data=body, headers={"Content-Type": "application/json"})
            assert response.status_code == 400, response.text
            assert response.json()["error"]["code"] == "invalid"
    assert take_messages(stack, connected["account_id"]) == []


def _inbox_counting_reads(stack, app_context) -> tuple[NotificationInbox, list[str]]:
    """The app's inbox over its real tables, each request to them counted (the SDK's own hook)."""
    requests_made: list[str] = []

    def table(name: str) -> Table:
        return Table(TableClient.from_connection_string(
            stack.storage_connection_string, name,
            raw_request_hook=lambda pipeline: requests_made.append(pipeline.http_request.method)))

    inbox = NotificationInbox(calendars=CalendarRepository(table("Calendars")),
                              index=SubscriptionIndex(table("Subscriptions")), queue=app_context.notifications.queue,
                              parallel=app_context.notifications.parallel)
    return inbox, requests_made


def _items(subscription_ids: list[str], client_state: str, tenant_id: str) -> bytes:
    return json.dumps({"value": [_notification({"id": sid}, client_state, tenant_id)["value"][0]
                                 for sid in subscription_ids]}).encode()


def test_one_anonymous_post_naming_unknown_subscriptions_costs_a_few_reads(stack, connected, app_context):
    inbox, reads = _inbox_counting_reads(stack, app_context)
    distinct = [str(uuid.uuid4()) for _ in range(1000)]
    outcome = inbox.receive_changes(_items(distinct, "guess", connected["tenant_id"]))
    assert (outcome.accepted, outcome.dropped) == (0, 1000)
    assert len(reads) <= 6, f"{len(reads)} table requests for one forged POST"
    reads.clear()
    outcome = inbox.receive_changes(_items([distinct[0]] * 1000, "guess", connected["tenant_id"]))
    assert (outcome.accepted, outcome.dropped) == (0, 1000)
    assert len(reads) <= 1
    # Unknown ones first do not stop the request's real items being looked up.
    reads.clear()
    real = connected["subscription"]
    outcome = inbox.receive_changes(_items([distinct[0], real["id"]], real["clientState"], connected["tenant_id"]))
    assert (outcome.accepted, outcome.dropped) == (1, 1)
    take_messages(stack, connected["account_id"])
    # Naming a real subscription without its clientState buys no more guesses.
    reads.clear()
    outcome = inbox.receive_changes(_items([real["id"], *distinct[:999]], "guess", connected["tenant_id"]))
    assert (outcome.accepted, outcome.dropped) == (0, 1000)
    assert len(reads) <= 2 + 6, f"{len(reads)} table requests for one forged POST naming a real subscription"


def test_a_busy_rooms_next_notifications_read_nothing_unless_their_client_state_is_new(stack, connected,
                                                                                       app_context):
    inbox, reads = _inbox_counting_reads(stack, app_context)
    real = connected["subscription"]
    take_messages(stack, connected["account_id"])
    assert inbox.receive_changes(_items([real["id"]], real["clientState"], connected["tenant_id"])).accepted == 1
    first = len(reads)
    assert first >= 1
    reads.clear()
    # The calendar just read, proven again by its clientState: queued without a read (the stamp is
    # minutes away, so no write either).
    for _ in range(3):
        assert inbox.receive_changes(_items([real["id"]], real["clientState"], connected["tenant_id"])).queued == 1
    assert reads == []
    assert len(take_messages(stack, connected["account_id"])) == 4
    # A clientState the remembered copy does not prove is checked against the calendar as stored.
    outcome = inbox.receive_changes(_items([real["id"]], "guessed-secret", connected["tenant_id"]))
    assert (outcome.accepted, outcome.dropped) == (0, 1)
    assert reads == ["GET"]
    # The subscription made again (a new clientState): the stored calendar proves it, the copy could not.
    stored = app_context.calendars.calendars.get(connected["account_id"], connected["email"])
    rotated = "a-new-client-state-after-the-subscription-was-made-again"
    stored.client_state_hash = client_state_hash(rotated)
    app_context.calendars.calendars.save(stored)
    reads.clear()
    assert inbox.receive_changes(_items([real["id"]], rotated, connected["tenant_id"])).accepted == 1
    assert reads == ["GET"]
    assert len(take_messages(stack, connected["account_id"])) == 1


def test_a_graph_batch_of_many_changes_of_one_subscription_is_one_message(anonymous, stack, connected):
    take_messages(stack, connected["account_id"])
    real = connected["subscription"]
    items = json.loads(_items([real["id"]] * 300, real["clientState"], connected["tenant_id"]))["value"]
    for n, item in enumerate(items):
        item["changeType"] = ("created", "updated", "deleted")[n % 3]
    response = anonymous.post("/api/notifications", json={"value": items})
    assert response.status_code == 202, response.text
    # Queued before the answer: one message says the room may have changed; the round reads what did.
    [message] = take_messages(stack, connected["account_id"])
    assert message["room_email"] == connected["email"] and message["changes"] == 300
    assert message["change_types"] == ["created", "updated", "deleted"] and message["change_type"] == "updated"


def test_one_post_of_many_rooms_with_a_few_stale_subscriptions_queues_every_known_room(admin, anonymous, stack, fire):
    """All our subscriptions share one notificationUrl, so Graph may batch 120 rooms in one POST; a
    few subscriptions we no longer know (removed rooms) among them cost a look-up each, nothing more."""
    account = account_with_calendars(admin, stack, rooms=120)
    fire("connector_run")
    subscriptions = sim_subscriptions(stack, account["tenant_id"])
    assert len(subscriptions) == 120
    known = [_notification(s, s["clientState"], account["tenant_id"])["value"][0] for s in subscriptions]
    stale = [_notification({"id": str(uuid.uuid4())}, "stale", account["tenant_id"])["value"][0] for _ in range(5)]
    # Two stale ones first, the rest spread through the batch; two changes of every known room.
    items = [stale[0], stale[1], *known[:40], stale[2], *known[40:80], stale[3], *known[80:], stale[4], *known]
    take_messages(stack, account["account_id"])
    response = anonymous.post("/api/notifications", json={"value": items})
    assert response.status_code == 202, response.text
    messages = take_messages(stack, account["account_id"])
    assert sorted(m["room_email"] for m in messages) == sorted(account["room_emails"])
    assert {m["changes"] for m in messages} == {2}


def _lifecycle(stack, subscription_id: str, event: str) -> None:
    delivery = sim(stack, "POST", f"subscriptions/{subscription_id}/lifecycle", json={"lifecycleEvent": event})
    assert delivery.status_code == 200, delivery.text
    assert delivery.json()["status"] == 202


def test_reauthorization_required_is_reauthorized_by_the_next_run(stack, fire, connected):
    subscription_id = connected["subscription"]["id"]
    _lifecycle(stack, subscription_id, "reauthorizationRequired")
    since = last_seq(stack)
    fire("connector_run")
    path = f"/v1.0/subscriptions/{subscription_id}/reauthorize"
    reauthorized = [r for r in sim_requests(stack, connected["tenant_id"], since)
                    if r["method"] == "POST" and r["path"].lower() == path]
    assert [r["status"] for r in reauthorized] == [204]


def test_subscription_removed_queues_the_calendar_for_a_new_subscription(admin, stack, fire, connected, app_context):
    old_id = connected["subscription"]["id"]
    _lifecycle(stack, old_id, "subscriptionRemoved")
    assert calendar(admin, connected, connected["email"])["status"] == "queued"
    fire("connector_run")
    room = app_context.calendars.calendars.get(connected["account_id"], connected["email"])
    assert room.status is CalendarStatus.CONNECTED
    assert room.subscription_id != old_id
    assert [s["id"] for s in sim_subscriptions(stack, connected["tenant_id"])] == [room.subscription_id]


def test_missed_marks_the_calendar_for_a_resync(stack, connected, app_context):
    take_messages(stack, connected["account_id"])
    _lifecycle(stack, connected["subscription"]["id"], "missed")
    room = app_context.calendars.calendars.get(connected["account_id"], connected["email"])
    assert room.resync_needed is True
    assert room.status is CalendarStatus.CONNECTED
    assert [m["change_type"] for m in take_messages(stack, connected["account_id"])] == ["missed"]


def test_a_lifecycle_event_with_a_wrong_client_state_has_no_effect(anonymous, admin, connected):
    body = {"value": [{"subscriptionId": connected["subscription"]["id"], "clientState": "guess",
                       "lifecycleEvent": "subscriptionRemoved", "tenantId": connected["tenant_id"]}]}
    assert anonymous.post("/api/notifications/lifecycle", json=body).status_code == 202
    assert calendar(admin, connected, connected["email"])["status"] == "connected"
