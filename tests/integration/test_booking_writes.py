"""Booking a space from the workplace system, through devhost, Azurite and m365sim: the event lands
on the room's calendar exactly once, is in the bookings API at once, never double-books the room,
survives a lost answer, and says clearly when Graph refuses it."""

from __future__ import annotations

import threading
import uuid

from tests.conftest import signed_in_session
from tests.helpers import wait_until
from tests.integration.connector_support import set_knobs, sim
from tests.integration.sync_support import at, book, calendar_sync, linked_room, space_bookings


def _slot(hours: float, minutes: int = 30) -> dict:
    return {"start": at(hours).isoformat(), "end": at(hours, minutes).isoformat()}


def _request(session, room, slot, key=None, subject="Team sync"):  # noqa: ANN001, ANN202
    return session.post(f"/api/spaces/{room['space_id']}/bookings",
                        json={**slot, "subject": subject,
                              "organizer": {"name": "Ines Park", "email": "ines.park@contoso.com"}},
                        headers={"Idempotency-Key": key or str(uuid.uuid4())})


def _mailbox(stack, room) -> list[dict]:  # noqa: ANN001
    response = sim(stack, "GET", f"tenants/{room['tenant_id']}/mailboxes/{room['email']}/events")
    assert response.status_code == 200, response.text
    return response.json()["value"]


def test_a_booking_lands_on_the_rooms_calendar_and_in_the_api_at_once(admin, stack, fire):
    room = linked_room(admin, stack, fire)
    created = _request(admin, room, _slot(3))
    assert created.status_code == 201, created.text
    booking = created.json()
    assert booking["subject"] == "Team sync" and booking["organizer"] == {"name": "Ines Park",
                                                                          "email": "ines.park@contoso.com"}
    assert booking["created_by_connector"] is True and booking["space_id"] == room["space_id"]
    [event] = [e for e in _mailbox(stack, room) if e["id"] == booking["id"]]
    assert event["subject"] == "Team sync" and event["transactionId"].startswith("rcc-")
    # In the store at once, and read back by the sync round the notification brings.
    assert [b["id"] for b in space_bookings(admin, room)] == [booking["id"]]
    wait_until(lambda: space_bookings(admin, room)[0]["seen_by_sync"], timeout=60)
    assert space_bookings(admin, room)[0]["organizer"]["email"] == "ines.park@contoso.com"


def test_the_same_idempotency_key_twice_is_one_event(admin, stack, fire):
    room = linked_room(admin, stack, fire)
    key = str(uuid.uuid4())
    first, second = _request(admin, room, _slot(3), key), _request(admin, room, _slot(3), key)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] == second.json()["id"]
    assert len(_mailbox(stack, room)) == 1
    reused = _request(admin, room, _slot(6), key)
    assert reused.status_code == 409 and "Idempotency-Key" in reused.json()["error"]["message"]
    assert len(_mailbox(stack, room)) == 1


def test_twenty_requests_for_overlapping_slots_at_once_book_the_room_once(admin, stack, fire):
    room = linked_room(admin, stack, fire)
    writer = signed_in_session(stack.base_url, "workplace.writer@contoso.onmicrosoft.com", ["bookings.write"])
    writer.headers["X-Requested-With"] = "test"
    start = threading.Barrier(20)
    answers: list = []

    def request(n: int) -> None:
        start.wait(timeout=30)
        answers.append(_request(writer, room, {"start": at(4, n).isoformat(), "end": at(4, 30 + n).isoformat()},
                                subject=f"Contender {n}"))

    threads = [threading.Thread(target=request, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [409] * 19, [a.text for a in answers if a.status_code not in (201, 409)]
    winner = next(a.json() for a in answers if a.status_code == 201)
    assert all(winner["id"] in a.text or winner["start"] in a.text for a in answers if a.status_code == 409)
    assert len(_mailbox(stack, room)) == 1


def test_a_timeout_after_graph_committed_still_gives_one_event(admin, stack, fire):
    room = linked_room(admin, stack, fire)
    set_knobs(stack, room["tenant_id"], stall_after_commit=1, stall_seconds=15)
    created = _request(admin, room, _slot(5))
    assert created.status_code == 201, created.text
    assert [e["id"] for e in _mailbox(stack, room)] == [created.json()["id"]]


def test_a_denied_write_is_a_clear_502_and_the_calendar_shows_why(admin, stack, fire):
    room = linked_room(admin, stack, fire)
    set_knobs(stack, room["tenant_id"], write_denied_mailboxes=[room["email"]])
    refused = _request(admin, room, _slot(3))
    assert refused.status_code == 502 and "denied" in refused.json()["error"]["message"]
    assert "denied" in (calendar_sync(admin, room) or {}).get("write_error", "")
    assert _mailbox(stack, room) == []


def test_throttling_is_a_503_with_retry_after(admin, stack, fire):
    room = linked_room(admin, stack, fire)
    set_knobs(stack, room["tenant_id"], throttle_rate=1.0, retry_after_seconds=30)
    throttled = _request(admin, room, _slot(3))
    assert throttled.status_code == 503 and int(throttled.headers["Retry-After"]) >= 1
    set_knobs(stack, room["tenant_id"], throttle_rate=0.0)


def test_a_booking_moves_and_cancels_on_both_sides_but_an_outlook_one_is_not_ours(admin, stack, fire):
    room = linked_room(admin, stack, fire)
    booking = _request(admin, room, _slot(3)).json()
    moved = admin.patch(f"/api/spaces/{room['space_id']}/bookings/{booking['id']}",
                        json={**_slot(8), "subject": "Moved"})
    assert moved.status_code == 200, moved.text
    assert moved.json()["start"] == at(8).strftime("%Y-%m-%dT%H:%M:%SZ")
    [event] = _mailbox(stack, room)
    assert event["subject"] == "Moved"
    outlook = book(stack, room, "From Outlook", at(10), at(11))
    wait_until(lambda: any(b["id"] == outlook["id"] for b in space_bookings(admin, room)), timeout=60)
    refused = admin.delete(f"/api/spaces/{room['space_id']}/bookings/{outlook['id']}")
    assert refused.status_code == 409 and "Outlook" in refused.json()["error"]["message"]
    cancelled = admin.delete(f"/api/spaces/{room['space_id']}/bookings/{booking['id']}")
    assert cancelled.status_code == 200
    assert [e["id"] for e in _mailbox(stack, room)] == [outlook["id"]]
    assert [b["id"] for b in space_bookings(admin, room)] == [outlook["id"]]


def test_bad_requests_change_nothing(admin, stack, fire):
    room = linked_room(admin, stack, fire)
    base = f"/api/spaces/{room['space_id']}/bookings"
    body = {**_slot(3), "subject": "x", "organizer": {"name": "A", "email": "a@contoso.com"}}
    assert admin.post(base, json=body).status_code == 400  # no Idempotency-Key
    for broken in ({**body, "end": body["start"]}, {**body, "start": "tomorrow"},
                   {**body, "start": at(3).replace(tzinfo=None).isoformat()},
                   {**body, "end": at(30).isoformat()}, {**body, "organizer": {"email": "not-an-email"}},
                   {**body, "subject": ""}, {**body, "colour": "red"}):
        answer = admin.post(base, json=broken, headers={"Idempotency-Key": str(uuid.uuid4())})
        assert answer.status_code == 400, (broken, answer.text)
    reader = signed_in_session(stack.base_url, "reader@contoso.onmicrosoft.com", ["bookings.read"])
    reader.headers["X-Requested-With"] = "test"
    assert reader.post(base, json=body, headers={"Idempotency-Key": "k1"}).status_code == 403
    assert _mailbox(stack, room) == []


def test_the_connection_test_books_the_next_free_quarter_hour_and_cancels_it(admin, stack, fire):
    room = linked_room(admin, stack, fire)
    base = f"/api/accounts/{room['account_id']}/calendars/{room['email']}"
    booked = admin.post(f"{base}/test-booking")
    assert booked.status_code == 201, booked.text
    test = booked.json()
    assert test["subject"] == "Connection test" and test["start"].endswith(("00:00Z", "15:00Z", "30:00Z", "45:00Z"))
    wait_until(lambda: next(b for b in admin.get(f"{base}/bookings").json()["items"]
                            if b["id"] == test["id"])["seen_by_sync"], timeout=60)
    assert admin.delete(f"{base}/bookings/{test['id']}").status_code == 200
    assert _mailbox(stack, room) == []
