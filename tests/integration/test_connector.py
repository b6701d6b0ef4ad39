"""The connector timer through devhost, Azurite and m365sim: connecting, renewing, failures,
Retry-After, overlapping runs, a killed run, removal, and the page-facing status."""

from __future__ import annotations

import copy
import threading
from datetime import timedelta

from shared.graph import subscription_expiry
from shared.models import CalendarStatus, iso, parse_iso, utc_now
from shared.notifications import client_state_hash
from tests.integration.connector_support import (
    account_with_calendars,
    add_and_queue,
    calendar,
    last_seq,
    set_knobs,
    sim,
    sim_requests,
    sim_subscriptions,
)


def test_queued_calendars_become_connected_when_the_timer_fires(admin, stack, fire, app_context):
    account = account_with_calendars(admin, stack, rooms=3)
    fire("connector_run")
    subscriptions = sim_subscriptions(stack, account["tenant_id"])
    assert len(subscriptions) == 3
    for email in account["room_emails"]:
        room = calendar(admin, account, email)
        assert room["status"] == "connected", room
        mine = [s for s in subscriptions if s["id"] == app_context.calendars.calendars.get(
            account["account_id"], email).subscription_id]
        assert len(mine) == 1
        subscription = mine[0]
        assert subscription["resource"].endswith("/events")
        assert subscription["changeType"] == "created,updated,deleted"
        assert subscription["notificationUrl"] == f"{stack.base_url}/api/notifications"
        assert subscription["lifecycleNotificationUrl"] == f"{stack.base_url}/api/notifications/lifecycle"
        assert 0 < len(subscription["clientState"]) <= 128
        assert parse_iso(room["subscription_expires_at"]) > utc_now() + timedelta(days=6)
        # The clientState is never stored in clear: only its hash is.
        entity = app_context.storage.table("Calendars").get(account["account_id"], email)
        assert subscription["clientState"] not in {str(v) for v in entity.values()}
        assert entity["client_state_hash"] == client_state_hash(subscription["clientState"])
    counts = admin.get(f"/api/accounts/{account['account_id']}/calendars").json()["counts"]
    assert counts["connected"] == 3


def test_status_serves_the_last_run_and_the_next(admin, stack, fire):
    account_with_calendars(admin, stack, rooms=1)
    fire("connector_run")
    status = admin.get("/api/connector/status")
    assert status.status_code == 200, status.text
    body = status.json()
    assert body["last_run"]["finished_at"] and body["last_run"]["started_at"]
    assert body["last_run"]["claimed"] >= 1 and body["last_run"]["connected"] >= 1
    for name in ("renewed", "failed", "throttled", "left_for_next_run"):
        assert isinstance(body["last_run"][name], int)
    next_run = parse_iso(body["next_run_at"])
    assert next_run > utc_now() and next_run.minute % 15 == 0 and next_run.second == 0


def test_status_needs_an_administrator(non_admin, anonymous):
    assert non_admin.get("/api/connector/status").status_code == 403
    assert anonymous.get("/api/connector/status").status_code == 401


def _expire_soon(app_context, account_id: str, email: str) -> str:
    rows = app_context.calendars.calendars
    room = rows.get(account_id, email)
    room.subscription_expires_at = iso(utc_now() + timedelta(hours=2))
    rows.save(room)
    return room.subscription_id or ""


def test_subscriptions_expiring_within_a_day_are_renewed(admin, stack, fire, app_context):
    account = account_with_calendars(admin, stack, rooms=1)
    email = account["room_emails"][0]
    fire("connector_run")
    subscription_id = _expire_soon(app_context, account["account_id"], email)
    since = last_seq(stack)
    fire("connector_run")
    patches = [r for r in sim_requests(stack, account["tenant_id"], since)
               if r["method"] == "PATCH" and r["path"].lower() == f"/v1.0/subscriptions/{subscription_id}"]
    assert [r["status"] for r in patches] == [200]
    room = calendar(admin, account, email)
    assert room["status"] == "connected"
    assert parse_iso(room["subscription_expires_at"]) > utc_now() + timedelta(days=6)
    assert app_context.calendars.calendars.get(account["account_id"], email).subscription_id == subscription_id


def test_a_subscription_gone_at_renewal_is_created_again(admin, stack, fire, app_context):
    account = account_with_calendars(admin, stack, rooms=1)
    email = account["room_emails"][0]
    fire("connector_run")
    old_id = _expire_soon(app_context, account["account_id"], email)
    assert sim(stack, "DELETE", f"subscriptions/{old_id}").status_code == 204
    fire("connector_run")
    room = app_context.calendars.calendars.get(account["account_id"], email)
    assert room.status is CalendarStatus.CONNECTED
    assert room.subscription_id and room.subscription_id != old_id
    assert [s["id"] for s in sim_subscriptions(stack, account["tenant_id"])] == [room.subscription_id]


def test_a_missing_mailbox_fails_with_a_reason_and_waits_for_the_admin(admin, stack, fire):
    account = account_with_calendars(admin, stack, rooms=2)
    missing, present = account["room_emails"]
    set_knobs(stack, account["tenant_id"], missing_mailboxes=[missing])
    fire("connector_run")
    room = calendar(admin, account, missing)
    assert room["status"] == "failed"
    assert "mailbox not found" in room["status_reason"]
    assert room["next_attempt_at"] is None
    assert calendar(admin, account, present)["status"] == "connected"


def test_access_denied_by_an_application_access_policy_is_named(admin, stack, fire):
    account = account_with_calendars(admin, stack, rooms=1)
    email = account["room_emails"][0]
    set_knobs(stack, account["tenant_id"], denied_mailboxes=[email])
    fire("connector_run")
    room = calendar(admin, account, email)
    assert room["status"] == "failed"
    assert "application access policy" in room["status_reason"]
    assert room["next_attempt_at"] is None
    assert sim_subscriptions(stack, account["tenant_id"]) == []


def test_a_user_mailbox_is_not_a_room(admin, stack, fire):
    account = account_with_calendars(admin, stack, rooms=1)
    add_and_queue(admin, account, account["admin"])
    fire("connector_run")
    room = calendar(admin, account, account["admin"])
    assert room["status"] == "failed"
    assert "not a room mailbox" in room["status_reason"]


def test_a_missing_calendar_permission_asks_to_reauthenticate(admin, stack, fire, app_context):
    account = account_with_calendars(admin, stack, rooms=1)
    email = account["room_emails"][0]
    set_knobs(stack, account["tenant_id"], missing_permissions=["Calendars.ReadWrite"])
    app_context.graph.tokens.forget(account["tenant_id"])
    fire("connector_run")
    room = calendar(admin, account, email)
    assert room["status"] == "failed"
    assert "re-authenticate" in room["status_reason"]
    assert app_context.calendars.calendars.get(account["account_id"], email).failure_kind == "permission"


def test_revoked_consent_marks_the_account_needs_reauth(admin, stack, fire):
    account = account_with_calendars(admin, stack, rooms=1)
    set_knobs(stack, account["tenant_id"], consent_revoked=True)
    fire("connector_run")
    body = admin.get(f"/api/accounts/{account['account_id']}").json()
    assert body["status"] == "needs_reauth"
    assert "re-authenticate" in body["status_reason"]
    assert sim_subscriptions(stack, account["tenant_id"]) == []


def test_server_errors_are_retried_later_with_a_next_attempt(admin, stack, fire):
    account = account_with_calendars(admin, stack, rooms=1)
    email = account["room_emails"][0]
    set_knobs(stack, account["tenant_id"], graph_5xx_rate=1.0, retry_after_seconds=1)
    fire("connector_run")
    room = calendar(admin, account, email)
    assert room["status"] == "failed"
    assert "retrying at" in room["status_reason"]
    assert parse_iso(room["next_attempt_at"]) > utc_now()
    set_knobs(stack, account["tenant_id"], graph_5xx_rate=0.0)
    assert admin.post(f"/api/accounts/{account['account_id']}/calendars/connect").json()["queued"] == 1
    fire("connector_run")
    assert calendar(admin, account, email)["status"] == "connected"


def test_retry_after_is_honoured(admin, stack, fire):
    account = account_with_calendars(admin, stack, rooms=2)
    set_knobs(stack, account["tenant_id"], throttle_rate=1.0, retry_after_seconds=2)
    since = last_seq(stack)
    fire("connector_run")
    graph = [r for r in sim_requests(stack, account["tenant_id"], since) if r["kind"] == "graph"]
    throttled = [r for r in graph if r["status"] == 429]
    assert throttled, graph
    for answer in throttled:
        later = [r for r in graph if r["seq"] > answer["seq"]]
        assert all(r["monotonic"] >= answer["monotonic"] + answer["retry_after"] for r in later), (answer, later)
    # Nothing was created while throttled; the rooms wait for a later run.
    assert not [r for r in graph if r["method"] == "POST" and r["status"] == 201]
    for email in account["room_emails"]:
        room = calendar(admin, account, email)
        assert room["status"] in ("queued", "failed"), room
        if room["status"] == "failed":
            assert "throttled" in room["status_reason"] and parse_iso(room["next_attempt_at"]) > utc_now()
    assert admin.get("/api/connector/status").json()["last_run"]["throttled"] >= 1


def test_two_runs_at_once_connect_each_calendar_once(admin, stack, fire, app_context):
    account = account_with_calendars(admin, stack, rooms=8)
    since = last_seq(stack)
    # One run in devhost's process, one more there at the same time, and one in this process.
    threads = [threading.Thread(target=fire, args=("connector_run",)) for _ in range(2)]
    threads.append(threading.Thread(target=app_context.connector.run))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    creates = [r for r in sim_requests(stack, account["tenant_id"], since)
               if r["method"] == "POST" and r["path"].lower() == "/v1.0/subscriptions" and r["status"] == 201]
    assert len(creates) == 8
    subscriptions = sim_subscriptions(stack, account["tenant_id"])
    assert len(subscriptions) == 8
    assert len({s["mailboxUserId"] for s in subscriptions}) == 8
    for email in account["room_emails"]:
        assert calendar(admin, account, email)["status"] == "connected"


def test_a_run_killed_after_creating_a_subscription_leaves_no_orphan(admin, stack, fire, app_context):
    account = account_with_calendars(admin, stack, rooms=1)
    email = account["room_emails"][0]
    connector = app_context.connector
    # The killed run: it claimed the calendar (its lease has run out since), saved the nonce,
    # created the subscription in Graph, and died before saving it.
    room = app_context.calendars.calendars.get(account["account_id"], email)
    claimed = connector.claim(room, "killed-run", connecting=True, lease=timedelta(seconds=-1))
    assert claimed is not None
    connector.subscriptions.create(account["tenant_id"], email, connector.claims.client_state(claimed),
                                   subscription_expiry())
    assert len(sim_subscriptions(stack, account["tenant_id"])) == 1
    fire("connector_run")
    saved = app_context.calendars.calendars.get(account["account_id"], email)
    assert saved.status is CalendarStatus.CONNECTED
    assert [s["id"] for s in sim_subscriptions(stack, account["tenant_id"])] == [saved.subscription_id]


def test_a_subscription_another_run_has_just_created_is_left_alone(admin, stack, fire, app_context):
    account = account_with_calendars(admin, stack, rooms=2)
    busy, other = account["room_emails"]
    connector = app_context.connector
    # Another run holds the room's lease and has created its subscription, named by the
    # mailbox's id, but has not saved anything about it yet.
    room = app_context.calendars.calendars.get(account["account_id"], busy)
    claimed = connector.claim(room, "run-in-flight", connecting=True)
    assert claimed is not None and claimed.mailbox_id is None
    mailbox_id = app_context.graph.get(account["tenant_id"], f"/users/{busy}")["id"]
    in_flight = connector.subscriptions.create(account["tenant_id"], mailbox_id, connector.claims.client_state(claimed),
                                               subscription_expiry())
    fire("connector_run")
    ids = {s["id"] for s in sim_subscriptions(stack, account["tenant_id"])}
    assert in_flight.subscription_id in ids
    assert ids == {in_flight.subscription_id,
                   app_context.calendars.calendars.get(account["account_id"], other).subscription_id}


def test_a_subscription_no_calendar_knows_is_deleted(admin, stack, fire, app_context):
    account = account_with_calendars(admin, stack, rooms=2, queue=False)
    known, unknown = account["room_emails"]
    assert admin.delete(f"/api/accounts/{account['account_id']}/calendars/{unknown}").status_code == 200
    app_context.connector.subscriptions.create(account["tenant_id"], unknown, "not-ours-any-more",
                                               subscription_expiry())
    assert admin.post(f"/api/accounts/{account['account_id']}/calendars/connect").json()["queued"] == 1
    fire("connector_run")
    subscriptions = sim_subscriptions(stack, account["tenant_id"])
    assert len(subscriptions) == 1
    assert subscriptions[0]["id"] == app_context.calendars.calendars.get(account["account_id"],
                                                                          known).subscription_id


def test_removing_a_calendar_deletes_its_subscription(admin, stack, fire):
    account = account_with_calendars(admin, stack, rooms=2)
    fire("connector_run")
    assert len(sim_subscriptions(stack, account["tenant_id"])) == 2
    gone = account["room_emails"][0]
    assert admin.delete(f"/api/accounts/{account['account_id']}/calendars/{gone}").status_code == 200
    assert len(sim_subscriptions(stack, account["tenant_id"])) == 1
    assert admin.delete(f"/api/accounts/{account['account_id']}").status_code == 200
    assert sim_subscriptions(stack, account["tenant_id"]) == []


def test_a_run_out_of_time_leaves_the_rest_for_the_next_run(admin, stack, fire, app_context):
    account = account_with_calendars(admin, stack, rooms=2)
    hurried = copy.copy(app_context.connector)
    hurried.time_limit_seconds = 0
    summary = hurried.run()
    assert summary["left_for_next_run"] >= 2
    assert all(calendar(admin, account, e)["status"] == "queued" for e in account["room_emails"])
    fire("connector_run")
    assert all(calendar(admin, account, e)["status"] == "connected" for e in account["room_emails"])


def test_rooms_claimed_together_skip_only_the_one_changed_meanwhile(admin, stack, app_context):
    account = account_with_calendars(admin, stack, rooms=3)
    rooms = [app_context.calendars.calendars.get(account["account_id"], e) for e in account["room_emails"]]
    # Someone writes the middle room after the run read it.
    changed = copy.deepcopy(rooms[1])
    changed.display_name = "renamed meanwhile"
    app_context.calendars.calendars.save(changed)
    claimed = app_context.connector.claim_many(rooms, "run-a", connecting=True)
    assert [c.email for c in claimed] == [rooms[0].email, rooms[2].email]
    stored = {e: app_context.calendars.calendars.get(account["account_id"], e) for e in account["room_emails"]}
    assert [stored[c.email].lease.owner if stored[c.email].lease else None for c in rooms] == ["run-a", None, "run-a"]
    assert stored[rooms[1].email].display_name == "renamed meanwhile"
    # Claimed together, they are not claimed again by another run.
    again = app_context.connector.claim_many(list(stored.values()), "run-b", connecting=True)
    assert [c.email for c in again] == [rooms[1].email]


def test_outcomes_saved_together_keep_a_write_made_meanwhile(admin, stack, app_context):
    from shared.connector import RunCounts, Settled, TenantRun

    account = account_with_calendars(admin, stack, rooms=3)
    connector = app_context.connector
    rooms = [app_context.calendars.calendars.get(account["account_id"], e) for e in account["room_emails"]]
    claimed = connector.claim_many(rooms, "run-a", connecting=True)
    assert len(claimed) == 3
    # A write to one room (say, a notification) lands while its subscription is being made.
    meanwhile = app_context.calendars.calendars.get(account["account_id"], claimed[0].email)
    meanwhile.display_name = "written meanwhile"
    app_context.calendars.calendars.save(meanwhile)

    def connected(current):
        current.set_status(CalendarStatus.CONNECTED, "connected")
        current.subscription_id = f"sub-{current.email}"

    counts = RunCounts()
    work = TenantRun(app_context.accounts.accounts.find(account["account_id"]), "run-a",
                     connector.gate(account["tenant_id"]), counts, float("inf"))
    connector.claims.settle_many(work, [Settled(c, connected, "connected") for c in claimed],
                                 connector.subscriber.abandon)
    assert counts.connected == 3
    for room in claimed:
        stored = app_context.calendars.calendars.get(account["account_id"], room.email)
        assert stored.status is CalendarStatus.CONNECTED and stored.subscription_id == f"sub-{room.email}"
        assert stored.lease is None
    assert app_context.calendars.calendars.get(account["account_id"],
                                               claimed[0].email).display_name == "written meanwhile"
