"""Booking sync through devhost, Azurite and m365sim: a booking made in Outlook (the simulator)
reaches the space's bookings API by the change notification, the queue and a delta round; and
updates, deletions, series, privacy, duplicate notifications, expired delta links and access all
behave as Graph's state says."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from shared.bookings.upcoming import HORIZON, SHOWN, entry
from shared.models import iso_precise, parse_iso, utc_now
from tests.conftest import signed_in_session
from tests.helpers import wait_until
from tests.integration.connector_support import account_with_calendars, set_knobs, sim
from tests.integration.sync_support import (
    at,
    book,
    calendar_sync,
    counting_sync,
    graph_time,
    linked_room,
    space_bookings,
    wait_for_bookings,
)


def test_a_booking_made_in_outlook_reaches_the_space_then_moves_then_goes(admin, stack, fire):
    room = linked_room(admin, stack, fire)
    event = book(stack, room, "Quarterly review", at(2), at(3))
    [booking] = wait_for_bookings(admin, room, lambda items: len(items) == 1)
    assert booking["id"] == event["id"] and booking["subject"] == "Quarterly review"
    assert booking["start"] == at(2).strftime("%Y-%m-%dT%H:%M:%SZ") and booking["space_id"] == room["space_id"]
    assert booking["organizer"]["email"]
    moved = sim(stack, "PATCH", f"tenants/{room['tenant_id']}/mailboxes/{room['email']}/events/{event['id']}",
                json={"start": graph_time(at(5)), "end": graph_time(at(6))})
    assert moved.status_code == 200, moved.text
    wait_for_bookings(admin, room, lambda items: [b["start"] for b in items] == [at(5).strftime("%Y-%m-%dT%H:%M:%SZ")])
    gone = sim(stack, "DELETE", f"tenants/{room['tenant_id']}/mailboxes/{room['email']}/events/{event['id']}")
    assert gone.status_code == 204
    wait_for_bookings(admin, room, lambda items: items == [])


def test_a_series_shows_its_occurrences_and_a_cancelled_one_disappears(admin, stack, fire):
    room = linked_room(admin, stack, fire)
    start = at(1)
    series = book(stack, room, "Stand-up", start, at(1, 15), recurrence={
        "pattern": {"type": "daily", "interval": 1},
        "range": {"type": "numbered", "startDate": start.strftime("%Y-%m-%d"), "numberOfOccurrences": 5}})
    items = wait_for_bookings(admin, room, lambda found: len(found) == 5)
    assert {b["series_master_id"] for b in items} == {series["id"]} and len({b["id"] for b in items}) == 5
    third = items[2]
    cancelled = sim(stack, "DELETE", f"tenants/{room['tenant_id']}/mailboxes/{room['email']}/events/{third['id']}")
    assert cancelled.status_code == 204
    left = wait_for_bookings(admin, room, lambda found: len(found) == 4)
    assert third["id"] not in {b["id"] for b in left}


def test_a_private_event_keeps_its_times_and_organizer_but_no_subject(admin, stack, fire, app_context):
    room = linked_room(admin, stack, fire)
    book(stack, room, "Confidential: layoffs", at(2), at(3), sensitivity="private")
    [booking] = wait_for_bookings(admin, room, lambda items: len(items) == 1)
    assert booking["subject"] == "Private" and booking["is_private"] is True and booking["organizer"]["email"]
    stored = app_context.bookings.store.get(room["account_id"], room["email"], booking["id"])
    assert stored is not None and stored.subject is None
    assert "layoffs" not in str(stored.to_entity())


def test_duplicate_and_out_of_order_notifications_change_nothing(admin, stack, fire, app_context):
    room = linked_room(admin, stack, fire)
    set_knobs(stack, room["tenant_id"], notification_duplicate_rate=1.0, notification_max_delay_ms=1500)
    events = [book(stack, room, f"Meeting {n}", at(n + 1), at(n + 1, 30)) for n in range(4)]
    items = wait_for_bookings(admin, room, lambda found: len(found) == 4)
    assert sorted(b["id"] for b in items) == sorted(e["id"] for e in events)
    # Replay a notification for each booking long after: the rows stay as they are.
    subscription = app_context.calendars.calendars.get(room["account_id"], room["email"]).subscription_id
    before = {b["id"]: b["change_key"] for b in items}
    for event in events:
        replay = sim(stack, "POST", f"subscriptions/{subscription}/notify",
                     json={"changeType": "updated", "eventId": event["id"]})
        assert replay.json()["status"] == 202
    wait_until(lambda: (calendar_sync(admin, room) or {}).get("syncing") is False, timeout=30)
    assert {b["id"]: b["change_key"] for b in space_bookings(admin, room)} == before


def test_an_expired_delta_link_brings_a_full_round(admin, stack, fire, app_context):
    room = linked_room(admin, stack, fire)
    book(stack, room, "Before", at(2), at(3))
    wait_for_bookings(admin, room, lambda items: len(items) == 1)
    expired = sim(stack, "POST", f"tenants/{room['tenant_id']}/delta/expire", json={"mailboxes": [room["email"]]})
    assert expired.status_code == 200
    full_before = app_context.bookings.states.get(room["account_id"], room["email"]).last_full_at
    # Lost notifications (dropped) and a new booking: the next round's link is refused, a full round reads it.
    set_knobs(stack, room["tenant_id"], notification_drop_rate=1.0)
    book(stack, room, "After", at(4), at(5))
    set_knobs(stack, room["tenant_id"], notification_drop_rate=0.0)
    book(stack, room, "Later", at(6), at(7))
    items = wait_for_bookings(admin, room, lambda found: len(found) == 3)
    assert [b["subject"] for b in items] == ["Before", "After", "Later"]
    assert app_context.bookings.states.get(room["account_id"], room["email"]).last_full_at > full_before


def test_callers_without_the_bookings_read_role_are_refused(admin, stack, fire):
    room = linked_room(admin, stack, fire)
    nobody = signed_in_session(stack.base_url, "someone@contoso.onmicrosoft.com", [])
    reader = signed_in_session(stack.base_url, "workplace@contoso.onmicrosoft.com", ["bookings.read"])
    assert nobody.get(f"/api/spaces/{room['space_id']}/bookings").status_code == 403
    assert nobody.get("/api/bookings/changes").status_code == 403
    assert reader.get(f"/api/spaces/{room['space_id']}/bookings").status_code == 200
    assert reader.get("/api/bookings/changes").status_code == 200
    # The app role reads bookings only: the admin API stays closed to it.
    assert reader.get(f"/api/accounts/{room['account_id']}/calendars").status_code == 403


def _changes_of(session, room, cursor=None):  # noqa: ANN001, ANN202
    response = session.get("/api/bookings/changes", params={"cursor": cursor} if cursor else None)
    assert response.status_code == 200, response.text
    page = response.json()
    return [item for item in page["items"] if item["calendar"]["email"] == room["email"]], page["cursor"]


def test_the_change_feed_mirrors_bookings_from_a_cursor(admin, stack, fire):
    room = linked_room(admin, stack, fire)
    kept = book(stack, room, "Kept", at(2), at(3))
    dropped = book(stack, room, "Dropped", at(4), at(5))
    wait_for_bookings(admin, room, lambda items: len(items) == 2)
    seen: dict = {}
    cursor = None

    def mirrored(expected: set) -> bool:
        nonlocal cursor
        items, cursor = _changes_of(admin, room, cursor)
        for item in items:
            if item["kind"] == "upserted":
                seen[item["booking_id"]] = item["booking"]
            elif item["kind"] == "removed":
                seen.pop(item["booking_id"], None)
        return set(seen) == expected

    wait_until(lambda: mirrored({kept["id"], dropped["id"]}), timeout=30, interval=0.5)
    assert seen[kept["id"]]["subject"] == "Kept" and seen[kept["id"]]["space_id"] == room["space_id"]
    assert sim(stack, "DELETE", f"tenants/{room['tenant_id']}/mailboxes/{room['email']}/events/{dropped['id']}"
               ).status_code == 204
    wait_until(lambda: mirrored({kept["id"]}), timeout=30, interval=0.5)
    # Unlinking tells the consumer to read the space again, as a whole.
    assert admin.delete(f"/api/accounts/{room['account_id']}/calendars/{room['email']}/space").status_code == 200
    resets: list = []
    wait_until(lambda: resets.extend(i for i in _changes_of(admin, room, cursor)[0] if i["kind"] == "space_reset")
               or resets, timeout=30, interval=0.5)
    assert resets[0]["space_id"] == room["space_id"]
    assert admin.get(f"/api/spaces/{room['space_id']}/bookings").status_code == 409


def test_a_cursor_the_feed_no_longer_keeps_is_gone(admin):
    import base64

    ancient = base64.urlsafe_b64encode(b"00000000000000001-abcd").decode().rstrip("=")
    assert admin.get("/api/bookings/changes", params={"cursor": ancient}).status_code == 410
    assert admin.get("/api/bookings/changes", params={"cursor": "not a cursor"}).status_code == 400


def _message(room: dict, received_at: str | None = None) -> str:
    return json.dumps({"account_id": room["account_id"], "room_email": room["email"], "change_type": "updated",
                       "received_at": received_at or iso_precise(utc_now())})


def _quiet(admin, stack, room) -> None:  # noqa: ANN001
    """The room's notifications are dropped, so no round runs but those the test runs itself."""
    set_knobs(stack, room["tenant_id"], notification_drop_rate=1.0)
    wait_until(lambda: (calendar_sync(admin, room) or {}).get("syncing") is False, timeout=30)


def _event(stack, room, event_id: str, method: str, **body) -> None:  # noqa: ANN001
    response = sim(stack, method, f"tenants/{room['tenant_id']}/mailboxes/{room['email']}/events/{event_id}",
                   json=body or None)
    assert response.status_code in (200, 204), response.text


def test_a_message_an_earlier_round_covered_costs_one_read(admin, stack, fire, app_context):
    room = linked_room(admin, stack, fire)
    sync, made = counting_sync(stack, app_context)
    assert sync.handle(_message(room, received_at="2020-01-01T00:00:00Z")) == "covered by an earlier round"
    assert [(name, method) for name, method, _ in made] == [("SyncStates", "GET")]


def test_an_incremental_round_reads_its_calendar_once_and_no_range_of_bookings(admin, stack, fire, app_context):
    room = linked_room(admin, stack, fire)
    _quiet(admin, stack, room)
    sync, made = counting_sync(stack, app_context)
    for n in range(4):
        book(stack, room, f"Meeting {n}", at(n + 1), at(n + 1, 30))
    assert sync.handle(_message(room)).startswith("synced (incremental: +4")
    # The calendar is read to start the round, not again to see whether it was removed meanwhile
    # (the sync state's If-Match save says so), and the next bookings come from what the round read.
    assert [method for name, method, _ in made if name == "Calendars"] == ["GET"]
    assert [url for name, method, url in made if name == "Bookings" and method == "GET" and " lt " in url] == []
    shown = calendar_sync(admin, room)["next_bookings"]
    assert [b["subject"] for b in shown] == ["Meeting 0", "Meeting 1", "Meeting 2"]


def test_the_next_bookings_after_incremental_rounds_are_what_the_query_shows(admin, stack, fire, app_context):
    room = linked_room(admin, stack, fire)
    _quiet(admin, stack, room)
    sync, made = counting_sync(stack, app_context)
    now = datetime.now(UTC).replace(microsecond=0)
    ends_at = now + timedelta(seconds=12)
    book(stack, room, "Ends soon", now - timedelta(hours=1), ends_at)
    meetings = [book(stack, room, f"Meeting {n}", at(n + 1), at(n + 1, 30)) for n in range(8)]
    book(stack, room, "Free", at(1, 10), at(1, 20), showAs="free")

    def round_shows() -> list[str]:
        assert sync.handle(_message(room)).startswith("synced (incremental")
        state = sync.states.get(room["account_id"], room["email"])
        moment = parse_iso(state.upcoming.at)
        query = [entry(b) for b in app_context.bookings.store.between(room["account_id"], room["email"], moment,
                                                                      moment + HORIZON)
                 if b.blocks_the_room][:SHOWN]
        assert state.next_bookings == query
        return [b["subject"] for b in state.next_bookings]

    def range_queries() -> int:
        return sum(1 for name, method, url in made if name == "Bookings" and method == "GET" and " lt " in url)

    assert round_shows() == ["Ends soon", "Meeting 0", "Meeting 1"]  # added
    _event(stack, room, meetings[0]["id"], "PATCH", start=graph_time(at(30)), end=graph_time(at(31)))
    _event(stack, room, meetings[1]["id"], "PATCH", subject="Renamed")
    assert round_shows() == ["Ends soon", "Renamed", "Meeting 2"]  # changed
    _event(stack, room, meetings[2]["id"], "DELETE")
    _event(stack, room, meetings[3]["id"], "PATCH", showAs="free")
    assert round_shows() == ["Ends soon", "Renamed", "Meeting 4"]  # removed, and no longer blocking
    assert range_queries() == 0
    time.sleep(max(0.0, (ends_at - datetime.now(UTC)).total_seconds()) + 1)
    book(stack, room, "Much later", at(100), at(101))
    assert round_shows() == ["Renamed", "Meeting 4", "Meeting 5"]  # the next booking ended


def _told_since(app_context, room: dict, marker: str) -> list[tuple[str, str, str]]:  # noqa: ANN001
    """The feed's rows for the room's calendar written after `marker` (a stamp), oldest first."""
    rows = app_context.bookings.feed.table.query_all("account_id eq @a and email eq @e",
                                                     parameters={"a": room["account_id"], "e": room["email"]})
    return [(r["kind"], r["space_id"], r["booking_id"]) for r in sorted(rows, key=lambda r: r["RowKey"])
            if r["RowKey"] > marker]


def _full_round(app_context, room: dict) -> str:  # noqa: ANN001
    return app_context.sync.handle(json.dumps({"account_id": room["account_id"], "room_email": room["email"],
                                               "change_type": "resync", "received_at": iso_precise(utc_now())}))


def _stamp() -> str:
    return f"{int(time.time() * 1_000_000):017d}"


def _seed(stack, room: dict, count: int) -> None:  # noqa: ANN001
    events = [{"subject": f"Seeded {n}", "start": graph_time(at(n % 200, 15 * (n // 200))),
               "end": graph_time(at(n % 200, 15 * (n // 200) + 10))} for n in range(count)]
    created = sim(stack, "POST", f"tenants/{room['tenant_id']}/events/bulk",
                  json={"mailboxes": {room["email"]: events}, "notify": False})
    assert created.status_code == 201, created.text


def test_a_full_round_of_many_changes_tells_the_feed_once_and_of_a_few_each(admin, stack, fire, app_context):
    room = linked_room(admin, stack, fire)
    _quiet(admin, stack, room)
    _seed(stack, room, 50)
    before = _stamp()
    assert _full_round(app_context, room).startswith("synced (full: +50 ~0 -0")
    assert _told_since(app_context, room, before) == [("space_reset", room["space_id"], "")]
    listed = space_bookings(admin, room, end=at(60))
    assert len(listed) == 50
    # Two differences: each is told, as an incremental round would.
    _event(stack, room, listed[0]["id"], "PATCH", subject="Renamed")
    _event(stack, room, listed[1]["id"], "DELETE")
    before = _stamp()
    assert _full_round(app_context, room).startswith("synced (full: +0 ~1 -1")
    assert sorted(_told_since(app_context, room, before)) == [("removed", room["space_id"], listed[1]["id"]),
                                                              ("upserted", room["space_id"], listed[0]["id"])]


def test_a_full_round_of_many_changes_on_a_calendar_of_no_space_tells_the_feed_one_calendar_reset(
        admin, stack, fire, app_context):
    linked = linked_room(admin, stack, fire, rooms=2)
    room = {**linked, "email": linked["room_emails"][1], "space_id": None}
    wait_until(lambda: (calendar_sync(admin, room) or {}).get("last_synced_at"), timeout=60,
               message="the first sync of the unlinked room never ran")
    _quiet(admin, stack, room)
    _seed(stack, room, 30)
    before = _stamp()
    assert _full_round(app_context, room).startswith("synced (full: +30 ~0 -0")
    assert _told_since(app_context, room, before) == [("calendar_reset", "", "")]
    wait_until(lambda: any(item["kind"] == "calendar_reset" and item["space_id"] is None
                           and item["calendar"] == {"account_id": room["account_id"], "email": room["email"]}
                           for item in _changes_of(admin, room)[0]),
               timeout=30, message="the calendar_reset never reached the change feed's API")
    listed = admin.get(f"/api/accounts/{room['account_id']}/calendars/{room['email']}/bookings",
                       params={"start": at(-1).isoformat(), "end": at(200).isoformat()})
    assert listed.status_code == 200, listed.text
    assert len(listed.json()["items"]) == 30


def test_a_full_round_still_writing_when_its_reset_could_be_read_tells_the_feed_again(admin, stack, fire,
                                                                                    app_context):
    room = linked_room(admin, stack, fire)
    _quiet(admin, stack, room)
    _seed(stack, room, 450)
    set_knobs(stack, room["tenant_id"], latency_ms=1500)  # three pages, 1.5 s each
    before = _stamp()
    assert _full_round(app_context, room).startswith("synced (full: +450")
    # A consumer may have read the space on the first reset while pages were still coming: the
    # second, after the last row, has it read the space again.
    assert [kind for kind, _, _ in _told_since(app_context, room, before)] == ["space_reset", "space_reset"]


def test_a_connector_run_brings_each_new_room_its_first_round_and_one_message_runs_several(
        admin, stack, fire, app_context):
    account = account_with_calendars(admin, stack, rooms=3)
    fire("connector_run")  # the rooms' first rounds are asked for once the tenant's connecting is done
    room = {**account, "email": account["room_emails"][0]}
    for email in account["room_emails"]:
        wait_until(lambda email=email: (calendar_sync(admin, {**room, "email": email}) or {}).get("last_synced_at"),
                   timeout=60, message=f"{email} never had its first round")
    # One message naming several rooms runs each room's round in turn; a room that is not there is
    # dropped and the others still run.
    sync, made = counting_sync(stack, app_context)
    now = iso_precise(utc_now())
    outcome = sync.handle(json.dumps({"account_id": account["account_id"], "room_email": account["room_emails"][0],
                                      "rooms": [*account["room_emails"], f"nobody@{account['domain']}"],
                                      "change_type": "resync", "received_at": now}))
    assert outcome.startswith("4 rooms: "), outcome
    assert "3 synced" in outcome and "1 dropped" in outcome, outcome
    for email in account["room_emails"]:
        assert app_context.sync.states.get(account["account_id"], email).last_full_at >= now
    # The rooms' states and calendars are read with one query each, and their leases are taken and
    # given back with one transaction each, not a request per room.
    assert sorted((name, method) for name, method, _ in made if name in ("SyncStates", "Calendars")) == [
        ("Calendars", "GET"), ("SyncStates", "GET"), ("SyncStates", "POST"), ("SyncStates", "POST")]


def _synced_quiet_rooms(admin, stack, fire, rooms: int = 3) -> dict:  # noqa: ANN001
    """An account's rooms, connected and through their first rounds, their notifications dropped."""
    account = account_with_calendars(admin, stack, rooms=rooms)
    fire("connector_run")
    for email in account["room_emails"]:
        wait_until(lambda email=email: (calendar_sync(admin, {**account, "email": email}) or {}).get("last_synced_at"),
                   timeout=60, message=f"{email} never had its first round")
    set_knobs(stack, account["tenant_id"], notification_drop_rate=1.0)
    return account


def test_rooms_of_one_message_whose_lease_transaction_meets_a_conflict_are_taken_each_on_its_own(
        admin, stack, fire, app_context):
    account = _synced_quiet_rooms(admin, stack, fire)
    emails = account["room_emails"]
    sync, made = counting_sync(stack, app_context)
    states = sync.states
    read = states.of_calendars

    def read_then_written_elsewhere(account_id, wanted):  # noqa: ANN001, ANN202
        found = read(account_id, wanted)
        # Another instance writes the first room's state after this message read it.
        states.save(states.get(account_id, emails[0]))
        return found

    states.of_calendars = read_then_written_elsewhere
    now = iso_precise(utc_now())
    outcome = sync.handle(json.dumps({"account_id": account["account_id"], "room_email": emails[0], "rooms": emails,
                                      "change_type": "resync", "received_at": now}))
    assert outcome == "3 rooms: 2 synced, 1 deferred", outcome
    assert app_context.sync.states.get(account["account_id"], emails[0]).last_full_at < now
    for email in emails[1:]:
        state = app_context.sync.states.get(account["account_id"], email)
        assert state.last_full_at >= now and state.lease is None


def test_rooms_of_one_message_whose_release_transaction_meets_a_conflict_are_given_back_each_on_its_own(
        admin, stack, fire, app_context):
    account = _synced_quiet_rooms(admin, stack, fire)
    emails = account["room_emails"]
    sync, _made = counting_sync(stack, app_context)
    rounds = sync.leased.rounds
    run = rounds.run

    def written_elsewhere_meanwhile(calendar, **options):  # noqa: ANN001, ANN003, ANN202
        result = run(calendar, **options)
        if calendar.email == emails[0]:
            # Another instance took over the room's state while this round ran (its lease had expired).
            taken = sync.states.get(calendar.account_id, calendar.email)
            taken.last_error = "written elsewhere"
            sync.states.save(taken)
        return result

    rounds.run = written_elsewhere_meanwhile
    now = iso_precise(utc_now())
    outcome = sync.handle(json.dumps({"account_id": account["account_id"], "room_email": emails[0], "rooms": emails,
                                      "change_type": "resync", "received_at": now}))
    assert outcome.startswith("3 rooms: "), outcome
    assert app_context.sync.states.get(account["account_id"], emails[0]).last_error == "written elsewhere"
    for email in emails[1:]:
        state = app_context.sync.states.get(account["account_id"], email)
        assert state.last_full_at >= now and state.lease is None and not state.last_error
