"""The next bookings a room's summary shows, worked out from what a round holds: always exactly what
the query of the table (the room's bookings overlapping the next 14 days, blocking ones, by start,
the first three) would have shown, for full rounds and for incremental rounds that add, change
and remove bookings while time passes and the next booking ends."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from shared.bookings.model import Booking
from shared.bookings.upcoming import HORIZON, KEPT, REACH, SHOWN, Upcoming, entry
from shared.models import iso

START = datetime(2026, 12, 1, 8, 0, 0, 123456, tzinfo=UTC)


def booking(booking_id: str, start: datetime, minutes: int = 60, **fields: object) -> Booking:
    values = {"time_zone": "UTC", "is_all_day": False, "subject": f"Meeting {booking_id}", "is_private": False,
              "organizer_name": "", "organizer_email": "", "show_as": "busy", "is_cancelled": False,
              "event_type": "singleInstance", "ical_uid": "", "series_master_id": "", "change_key": "", **fields}
    return Booking(account_id="acct", email="room@x.com", booking_id=booking_id, start=iso(start) or "",
                   end=iso(start + timedelta(minutes=minutes)) or "", **values)  # type: ignore[arg-type]


class Table:
    """A calendar's rows and the query the summary used to make (`BookingStore.between`, then the
    first three that block the room)."""

    def __init__(self) -> None:
        self.rows: dict[str, Booking] = {}
        self.queries = 0

    def between(self, start: datetime, end: datetime) -> list[Booking]:
        self.queries += 1
        low, high = iso(start) or "", iso(end) or ""
        found = [b for b in self.rows.values() if b.start < high and b.end > low]
        return sorted(found, key=lambda b: (b.start, b.end, b.booking_id))

    def shown_by_the_query(self, now: datetime) -> list[dict]:
        queries = self.queries
        shown = [entry(b) for b in self.between(now, now + HORIZON) if b.blocks_the_room][:SHOWN]
        self.queries = queries
        return shown


def finish(table: Table, previous: Upcoming | None, named: dict[str, Booking | None] | None,
           now: datetime) -> Upcoming:
    """What `BookingSync._upcoming` does: a full round (`named` None) knows every row."""
    if named is None:
        return Upcoming.of(table.rows.values(), now)
    known = previous.after(named, now) if previous is not None else None
    return known if known is not None else Upcoming.of(table.between(now, now + REACH), now)


def incremental(table: Table, previous: Upcoming, now: datetime, *, put: list[Booking] = (),
                remove: list[str] = (), mention: list[str] = ()) -> Upcoming:
    named: dict[str, Booking | None] = {b_id: table.rows.get(b_id) for b_id in mention}
    for b in put:
        table.rows[b.booking_id] = named[b.booking_id] = b
    for b_id in remove:
        table.rows.pop(b_id, None)
        named[b_id] = None
    upcoming = finish(table, previous, named, now)
    assert upcoming.shown() == table.shown_by_the_query(now)
    return upcoming


def test_a_full_round_shows_what_the_query_shows_without_asking_it() -> None:
    table = Table()
    for n in range(20):
        table.rows[f"b{n}"] = booking(f"b{n}", START + timedelta(hours=5 * n - 3))
    table.rows["free"] = booking("free", START + timedelta(minutes=30), show_as="free")
    table.rows["off"] = booking("off", START + timedelta(minutes=40), is_cancelled=True)
    table.rows["secret"] = booking("secret", START + timedelta(minutes=50), is_private=True, subject=None)
    upcoming = finish(table, None, None, START)
    assert upcoming.shown() == table.shown_by_the_query(START) and table.queries == 0
    assert [e["id"] for e in upcoming.shown()] == ["secret", "b1", "b2"]  # b0 ended, the others do not block
    assert upcoming.shown()[0]["subject"] == "Private"


def test_incremental_adds_changes_and_removals_keep_the_list_exact() -> None:
    table = Table()
    for n in range(10):
        table.rows[f"b{n}"] = booking(f"b{n}", START + timedelta(hours=2 * n + 1))
    upcoming = finish(table, None, None, START)
    now = START + timedelta(minutes=5)
    # Added: one before all, one after all; changed: the second moves last, the first is renamed.
    upcoming = incremental(table, upcoming, now, put=[booking("early", START + timedelta(minutes=30)),
                                                      booking("late", START + timedelta(days=3))])
    upcoming = incremental(table, upcoming, now, put=[booking("b1", START + timedelta(days=2)),
                                                      booking("b0", START + timedelta(hours=1), subject="Renamed")])
    # Removed, cancelled and set free: each leaves the list and the next one moves up.
    upcoming = incremental(table, upcoming, now, remove=["early"])
    upcoming = incremental(table, upcoming, now, put=[booking("b2", START + timedelta(hours=5), is_cancelled=True)])
    assert table.queries == 0
    # Four of the six kept have gone: fewer than three are known for sure, so the table is asked, once.
    upcoming = incremental(table, upcoming, now, put=[booking("b3", START + timedelta(hours=7), show_as="free")])
    assert table.queries == 1
    # Named but unchanged, and removed though it was never stored (the API removed it first).
    upcoming = incremental(table, upcoming, now, mention=["b4"], remove=["never-stored"])
    assert [e["id"] for e in upcoming.shown()] == ["b0", "b4", "b5"]
    assert table.queries == 1


def test_a_next_booking_that_ended_leaves_the_list_and_the_next_ones_move_up() -> None:
    table = Table()
    for n in range(KEPT + 4):
        table.rows[f"b{n}"] = booking(f"b{n}", START + timedelta(hours=n), minutes=30)
    upcoming = finish(table, None, None, START)
    # The first ones end one by one; rounds that change nothing else still show the right three.
    for hours in range(1, KEPT + 4):
        upcoming = incremental(table, upcoming, START + timedelta(hours=hours, minutes=31))
    assert upcoming.shown() == []
    assert table.queries >= 1  # past what it kept, only the table can tell


def test_the_table_is_asked_when_the_round_cannot_know() -> None:
    table = Table()
    for n in range(12):
        table.rows[f"b{n}"] = booking(f"b{n}", START + timedelta(hours=n + 1))
    upcoming = finish(table, None, None, START)
    # Changes to every kept booking: the ones after them are not known to the round.
    queries = table.queries
    incremental(table, upcoming, START, remove=[f"b{n}" for n in range(KEPT - SHOWN + 1)])
    assert table.queries == queries + 1
    # A state that kept nothing (written before it was kept), a clock that went back, the reach passed.
    assert Upcoming.from_json("") is None and Upcoming.from_json('{"at": 1}') is None
    assert upcoming.after({}, START - timedelta(seconds=1)) is None
    assert upcoming.after({}, START + REACH - HORIZON + timedelta(seconds=1)) is None
    assert Upcoming.from_json(upcoming.to_json()) == upcoming


def test_a_booking_entering_the_horizon_is_shown_when_few_are_ahead() -> None:
    table = Table()
    table.rows["far"] = booking("far", START + HORIZON + timedelta(hours=6))
    table.rows["soon"] = booking("soon", START + timedelta(hours=1))
    upcoming = finish(table, None, None, START)
    assert [e["id"] for e in upcoming.shown()] == ["soon"]
    upcoming = incremental(table, upcoming, START + timedelta(hours=7))
    assert [e["id"] for e in upcoming.shown()] == ["far"] and table.queries == 0


@pytest.mark.parametrize("seed", range(40))
def test_random_rounds_show_what_the_query_would(seed: int) -> None:
    rng = random.Random(seed)
    table = Table()
    ids = [f"e{n}" for n in range(rng.choice([4, 12, 40]))]

    def random_booking(booking_id: str, now: datetime) -> Booking:
        start = now + timedelta(minutes=rng.randrange(-24 * 60, 20 * 24 * 60, 15))
        return booking(booking_id, start, minutes=rng.choice([15, 30, 60, 240, 24 * 60]),
                       show_as=rng.choice(["busy", "busy", "tentative", "free"]), is_cancelled=rng.random() < 0.1,
                       is_private=rng.random() < 0.2)

    now = START
    for booking_id in rng.sample(ids, len(ids) // 2):
        table.rows[booking_id] = random_booking(booking_id, now)
    upcoming = finish(table, None, None, now)
    rounds = 0
    for _ in range(150):
        now += timedelta(minutes=rng.choice([0, 0, 1, 10, 60, 6 * 60, 30 * 60]))
        if rng.random() < 0.05:  # the daily round, or a 410
            upcoming = finish(table, upcoming, None, now)
            assert upcoming.shown() == table.shown_by_the_query(now)
            continue
        touched = rng.sample(ids, rng.randrange(0, 4))
        put = [random_booking(b_id, now) for b_id in touched if rng.random() < 0.7]
        remove = [b_id for b_id in touched if b_id not in {b.booking_id for b in put} and rng.random() < 0.5]
        mention = [b_id for b_id in touched if b_id not in remove and b_id not in {b.booking_id for b in put}]
        upcoming = incremental(table, upcoming, now, put=put, remove=remove, mention=mention)
        rounds += 1
    assert table.queries < rounds  # most rounds need no query
