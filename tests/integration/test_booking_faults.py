"""Booking sync when things go wrong: the host killed mid-round, Graph throttling, a message that
keeps failing, changes for calendars that are gone, lost notifications (missed), and the sweep that
reads every calendar daily and cleans what removed calendars left."""

from __future__ import annotations

import json
import threading
from dataclasses import replace

import pytest

from shared.bookings import BookingSync
from shared.bookings.model import Booking, calendar_partition
from tests.helpers import wait_until
from tests.integration.connector_support import changes_queue, set_knobs, sim
from tests.integration.sync_support import at, book, calendar_sync, graph_time, linked_room, wait_for_bookings


def _series(count: int) -> list[dict]:
    return [{"subject": f"Booked {n}", "start": graph_time(at(n % 200, 15 * (n // 200))),
             "end": graph_time(at(n % 200, 15 * (n // 200) + 10))} for n in range(count)]


def test_a_host_killed_mid_round_loses_and_doubles_nothing(admin, stack, fire, app_context):
    room = linked_room(admin, stack, fire)
    created = sim(stack, "POST", f"tenants/{room['tenant_id']}/events/bulk",
                  json={"mailboxes": {room["email"]: _series(450)}, "notify": False})
    assert created.status_code == 201, created.text
    # Slow pages, so the round is surely running when the host dies.
    set_knobs(stack, room["tenant_id"], latency_ms=1500)
    app_context.sync.request_resync([app_context.calendars.calendars.get(room["account_id"], room["email"])], "test")
    wait_until(lambda: (calendar_sync(admin, room) or {}).get("syncing"), timeout=30, interval=0.1,
               message="the round never started")
    stack.kill_devhost()
    stack.wait_for_devhost()
    set_knobs(stack, room["tenant_id"], latency_ms=0)
    items = wait_for_bookings(admin, room, lambda found: len(found) == 450, timeout=120,
                              end=at(24 * 30).replace(tzinfo=at(0).tzinfo))
    assert len({b["id"] for b in items}) == 450
    stored = list(app_context.bookings.store.of_calendar(room["account_id"], room["email"]))
    assert len(stored) == 450


def test_throttling_puts_the_round_off_until_graph_lets_it_in(admin, stack, fire):
    room = linked_room(admin, stack, fire)
    set_knobs(stack, room["tenant_id"], throttle_rate=1.0, retry_after_seconds=2)
    book(stack, room, "Throttled", at(2), at(3))
    wait_until(lambda: "429" in str((calendar_sync(admin, room) or {}).get("last_error")), timeout=60,
               message="the throttled round never said so")
    set_knobs(stack, room["tenant_id"], throttle_rate=0.0)
    [booking] = wait_for_bookings(admin, room, lambda items: len(items) == 1)
    assert booking["subject"] == "Throttled"
    wait_until(lambda: (calendar_sync(admin, room) or {}).get("last_error") is None, timeout=30)


def test_a_change_that_keeps_failing_leaves_its_reason_on_the_page(admin, stack, fire, app_context):
    room = linked_room(admin, stack, fire)
    book(stack, room, "Will not store", at(2), at(3))
    # The host's own round of that booking is done (its lease given back) before the faults begin:
    # a message met while it runs would wait for it instead of failing.
    wait_for_bookings(admin, room, lambda items: len(items) == 1)
    wait_until(lambda: (calendar_sync(admin, room) or {}).get("syncing") is False, timeout=30)

    class FailingStore(type(app_context.bookings.store)):
        # A storage fault, every time: on the round's first read too, since the notification's own
        # round may already have stored the booking and left this one nothing to write.
        def write(self, upserts, removals):  # noqa: ANN001, ANN202
            raise RuntimeError("injected storage fault")

        def of_calendar(self, account_id, email):  # noqa: ANN001, ANN202
            raise RuntimeError("injected storage fault")

    sync = app_context.sync
    failing = BookingSync(accounts=sync.accounts, calendars=sync.calendars, states=sync.states,
                          store=sync.store, feed=sync.feed, queue=sync.queue, parallel=sync.parallel,
                          rounds=replace_store(sync.rounds, FailingStore(sync.store.table, sync.parallel)),
                          days_back=sync.days_back, days_ahead=sync.days_ahead)
    message = json.dumps({"account_id": room["account_id"], "room_email": room["email"], "change_type": "resync"})
    for delivery in range(1, 6):
        with pytest.raises(RuntimeError):
            failing.handle(message, dequeue_count=delivery)
    shown = calendar_sync(admin, room)
    assert shown and "calendar-changes-poison" in shown["last_error"] and shown["syncing"] is False


def replace_store(rounds, store):  # noqa: ANN001, ANN201
    clone = type(rounds)(graph=rounds.graph, store=store, feed=rounds.feed, max_wait_seconds=rounds.max_wait_seconds)
    return clone


def test_a_change_for_a_removed_calendar_is_dropped_and_its_bookings_go(admin, stack, fire, app_context):
    room = linked_room(admin, stack, fire)
    book(stack, room, "Soon gone", at(2), at(3))
    wait_for_bookings(admin, room, lambda items: len(items) == 1)
    assert admin.delete(f"/api/accounts/{room['account_id']}/calendars/{room['email']}").status_code == 200
    assert list(app_context.bookings.store.of_calendar(room["account_id"], room["email"])) == []
    changes_queue(stack).send_message(json.dumps({"account_id": room["account_id"], "room_email": room["email"],
                                                  "change_type": "updated", "received_at": "not a time"}))
    outcome = app_context.sync.handle(json.dumps({"account_id": room["account_id"], "room_email": room["email"],
                                                  "change_type": "updated"}))
    assert outcome == "dropped: unknown calendar"
    assert admin.get(f"/api/spaces/{room['space_id']}/bookings").status_code == 409
    assert app_context.bookings.states.table.get(room["account_id"], room["email"]) is None


def test_a_missed_lifecycle_event_brings_a_full_round(admin, stack, fire, app_context):
    room = linked_room(admin, stack, fire)
    full_before = app_context.bookings.states.get(room["account_id"], room["email"]).last_full_at
    subscription = app_context.calendars.calendars.get(room["account_id"], room["email"]).subscription_id
    set_knobs(stack, room["tenant_id"], notification_drop_rate=1.0)
    book(stack, room, "Never announced", at(2), at(3))
    set_knobs(stack, room["tenant_id"], notification_drop_rate=0.0)
    missed = sim(stack, "POST", f"subscriptions/{subscription}/lifecycle", json={"lifecycleEvent": "missed"})
    assert missed.json()["status"] == 202
    [booking] = wait_for_bookings(admin, room, lambda items: len(items) == 1)
    assert booking["subject"] == "Never announced"
    wait_until(lambda: app_context.calendars.calendars.get(room["account_id"], room["email"]).resync_needed is False,
               timeout=30)
    assert app_context.bookings.states.get(room["account_id"], room["email"]).last_full_at > full_before


def test_the_sweep_reads_stale_calendars_again_and_cleans_what_removed_ones_left(admin, stack, fire, app_context):
    room = linked_room(admin, stack, fire)
    states = app_context.bookings.states
    state = states.get(room["account_id"], room["email"])
    states.save(replace(state, last_full_at="2020-01-01T00:00:00Z"))
    # What a calendar removed in the middle of its round would leave behind.
    orphan = Booking(account_id=room["account_id"], email="gone@example.com", booking_id="AAMkorphan",
                     start="2030-01-01T10:00:00Z", end="2030-01-01T11:00:00Z", time_zone="UTC", is_all_day=False,
                     subject="Orphan", is_private=False, organizer_name="", organizer_email="", show_as="busy",
                     is_cancelled=False, event_type="singleInstance", ical_uid="", series_master_id="", change_key="")
    app_context.bookings.store.write([orphan], [])
    states.table.upsert({"PartitionKey": room["account_id"], "RowKey": "gone@example.com"})
    fire("sync_sweep")
    wait_until(lambda: states.get(room["account_id"], room["email"]).last_full_at > "2020-01-01T00:00:00Z",
               timeout=60, message="the sweep never asked for the stale calendar's full round")
    assert states.table.get(room["account_id"], "gone@example.com") is None
    assert app_context.bookings.store.table.get(calendar_partition(room["account_id"], "gone@example.com"),
                                                "AAMkorphan") is None


def test_a_calendar_removed_while_its_round_runs_leaves_nothing_behind(admin, stack, fire, app_context):
    room = linked_room(admin, stack, fire)
    set_knobs(stack, room["tenant_id"], notification_drop_rate=1.0)
    created = sim(stack, "POST", f"tenants/{room['tenant_id']}/events/bulk",
                  json={"mailboxes": {room["email"]: _series(600)}, "notify": False})
    assert created.status_code == 201, created.text
    # Slow pages: the calendar is removed after the round wrote its first page and before its last.
    set_knobs(stack, room["tenant_id"], latency_ms=1000)
    store, states = app_context.bookings.store, app_context.bookings.states
    outcome: list[str] = []
    message = json.dumps({"account_id": room["account_id"], "room_email": room["email"], "change_type": "resync"})
    running = threading.Thread(target=lambda: outcome.append(app_context.sync.handle(message)))
    running.start()
    wait_until(lambda: len(list(store.of_calendar(room["account_id"], room["email"]))) >= 200, timeout=60,
               interval=0.2, message="the round never wrote its first page")
    assert admin.delete(f"/api/accounts/{room['account_id']}/calendars/{room['email']}").status_code == 200
    running.join(120)
    assert outcome and outcome[0].startswith("synced (full")
    assert list(store.of_calendar(room["account_id"], room["email"])) == []
    assert states.table.get(room["account_id"], room["email"]) is None
