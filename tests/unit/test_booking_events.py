"""Reading Graph's events into bookings: times in UTC whatever zone Graph answers in, privacy, and
events with shapes the product must store safely or skip with a reason, never crash on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.bookings.model import Booking, Unreadable, booking_from_event, row_key

EVENT = json.loads((Path(__file__).resolve().parents[1] / "events" / "event.json").read_text(encoding="utf-8"))


def test_a_graph_event_in_its_own_zone_becomes_a_booking_in_utc() -> None:
    # Graph's documented example answers in Pacific time (daylight saving in August: UTC-7).
    booking = booking_from_event(EVENT, "acct", "orchard@contoso.com")
    assert (booking.start, booking.end) == ("2017-08-30T18:00:00Z", "2017-08-30T19:00:00Z")
    assert booking.time_zone == "Pacific Standard Time"
    assert booking.subject == "Plan summer company picnic"
    assert (booking.organizer_name, booking.organizer_email) == ("Adele Vance", "adelev@contoso.onmicrosoft.com")
    assert Booking.from_entity(booking.to_entity()) == booking


def test_utc_answers_and_iana_zones_are_read_alike() -> None:
    event = {**EVENT, "start": {"dateTime": "2026-12-02T17:00:00.0000000", "timeZone": "UTC"},
             "end": {"dateTime": "2026-12-02T10:00:00.0000000", "timeZone": "America/Los_Angeles"}}
    booking = booking_from_event(event, "acct", "orchard@contoso.com")
    assert (booking.start, booking.end) == ("2026-12-02T17:00:00Z", "2026-12-02T18:00:00Z")


def test_a_private_event_keeps_no_subject() -> None:
    booking = booking_from_event({**EVENT, "sensitivity": "private"}, "acct", "orchard@contoso.com")
    assert booking.subject is None and booking.to_api()["subject"] == "Private"
    assert "picnic" not in json.dumps(booking.to_entity())


@pytest.mark.parametrize("change, reason", [
    ({"end": None}, "no end"),
    ({"start": {"dateTime": "soon"}}, "not a date"),
    ({"start": {"dateTime": "2017-08-30T09:00:00.0000000", "timeZone": "Mars/Olympus"}}, "cannot place"),
    ({"start": {"dateTime": "2017-08-30T09:00:00.0000000"}}, "no time zone"),
    ({"end": {"dateTime": "2017-08-29T09:00:00.0000000", "timeZone": "UTC"}}, "ends before"),
    ({"id": None}, "no id"),
])
def test_events_without_usable_times_are_skipped_with_the_reason(change: dict, reason: str) -> None:
    with pytest.raises(Unreadable, match=reason):
        booking_from_event({**EVENT, **change}, "acct", "orchard@contoso.com")


def test_odd_but_usable_shapes_are_stored_safely() -> None:
    all_day = {**EVENT, "isAllDay": True, "start": {"dateTime": "2017-08-31T00:00:00"},
               "end": {"dateTime": "2017-09-01T00:00:00"}}
    assert booking_from_event(all_day, "a", "r@x.com").start == "2017-08-31T00:00:00Z"
    crowded = {**EVENT, "attendees": [{"emailAddress": {"address": f"p{n}@x.com"}} for n in range(500)],
               "subject": "x" * 10_000, "organizer": "not an object"}
    booking = booking_from_event(crowded, "a", "r@x.com")
    assert len(booking.subject or "") == 500 and booking.organizer_email == ""
    assert len(json.dumps(booking.to_entity())) < 4000


def test_ids_table_keys_cannot_hold_are_hashed() -> None:
    assert row_key("AAMkAGI2TG93AAA=") == "AAMkAGI2TG93AAA="
    assert row_key("AAMk/with+slash") != "AAMk/with+slash" and "/" not in row_key("AAMk/with+slash")
