"""Pure logic of m365sim's calendars, no process: recurrence patterns at month ends and across
daylight-saving changes, ids derived from master and original start, Windows time zone names."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from m365sim.events import (
    EventInvalid,
    StoredEvent,
    new_event_id,
    occurrence_id,
    occurrences,
    parse_event_id,
    read_fields,
    read_recurrence,
)
from m365sim.recurrence import RecurrenceInvalid, parse_recurrence
from m365sim.timezones import UnknownTimeZone, format_local, resolve_zone

UTC = dt.UTC


def _series(body: dict) -> StoredEvent:
    fields = read_fields(body, None)
    return StoredEvent(id=new_event_id(), ical_uid="x", created=0, modified=0, change_key="k", fields=fields,
                       recurrence=read_recurrence(body, fields), organizer={"name": "a", "address": "a@b.c"},
                       is_organizer=True, response="organizer")


def _dates(pattern: dict, start: str = "2026-01-01", count: int = 4, **range_: object) -> list[str]:
    recurrence = parse_recurrence({"pattern": pattern, "range": {"type": "noEnd", "startDate": start, **range_}},
                                  dt.date.fromisoformat(start), "UTC")
    return [d.isoformat() for d in itertools.islice(recurrence.dates(), count)]


def test_a_weekly_series_keeps_its_wall_clock_time_across_daylight_saving() -> None:
    series = _series({"start": {"dateTime": "2026-03-16T09:00:00", "timeZone": "W. Europe Standard Time"},
                      "end": {"dateTime": "2026-03-16T10:00:00", "timeZone": "W. Europe Standard Time"},
                      "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                                     "range": {"type": "numbered", "startDate": "2026-03-16",
                                               "numberOfOccurrences": 3}}})
    found = occurrences(series, dt.datetime(2026, 3, 1, tzinfo=UTC), dt.datetime(2026, 4, 30, tzinfo=UTC))
    assert [o.fields.start.isoformat() for o in found] == [
        "2026-03-16T08:00:00+00:00", "2026-03-23T08:00:00+00:00", "2026-03-30T07:00:00+00:00"]
    assert all(o.fields.end - o.fields.start == dt.timedelta(hours=1) for o in found)


def test_month_end_patterns() -> None:
    assert _dates({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31}) == [
        "2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30"]
    assert _dates({"type": "relativeMonthly", "interval": 2, "daysOfWeek": ["friday"], "index": "last"}) == [
        "2026-01-30", "2026-03-27", "2026-05-29", "2026-07-31"]
    assert _dates({"type": "absoluteYearly", "interval": 1, "month": 2, "dayOfMonth": 29}, start="2027-01-01") == [
        "2027-02-28", "2028-02-29", "2029-02-28", "2030-02-28"]
    assert _dates({"type": "relativeYearly", "interval": 1, "month": 11, "daysOfWeek": ["thursday"],
                   "index": "fourth"}, count=2) == ["2026-11-26", "2027-11-25"]


def test_weekly_interval_and_first_day_of_week() -> None:
    assert _dates({"type": "weekly", "interval": 2, "daysOfWeek": ["monday", "sunday"], "firstDayOfWeek": "monday"},
                  start="2026-01-05", count=4) == ["2026-01-05", "2026-01-11", "2026-01-19", "2026-01-25"]


def test_far_windows_of_endless_series_skip_ahead() -> None:
    series = _series({"start": {"dateTime": "2026-01-01T09:00:00", "timeZone": "UTC"},
                      "end": {"dateTime": "2026-01-01T09:30:00", "timeZone": "UTC"},
                      "recurrence": {"pattern": {"type": "daily", "interval": 3},
                                     "range": {"type": "noEnd", "startDate": "2026-01-01"}}})
    found = occurrences(series, dt.datetime(2120, 1, 1, tzinfo=UTC), dt.datetime(2120, 1, 10, tzinfo=UTC))
    assert len(found) == 3
    assert all((o.fields.start.date() - dt.date(2026, 1, 1)).days % 3 == 0 for o in found)


@pytest.mark.parametrize("recurrence", [
    {"pattern": {"type": "hourly"}, "range": {"type": "noEnd"}},
    {"pattern": {"type": "daily", "interval": 0}, "range": {"type": "noEnd"}},
    {"pattern": {"type": "daily"}, "range": {"type": "numbered", "numberOfOccurrences": 1000}},
    {"pattern": {"type": "daily"}, "range": {"type": "endDate", "startDate": "2026-02-01", "endDate": "2026-01-01"}},
    {"pattern": {"type": "absoluteMonthly"}, "range": {"type": "noEnd"}},
])
def test_unusable_recurrences_are_refused(recurrence: dict) -> None:
    with pytest.raises(RecurrenceInvalid):
        parse_recurrence(recurrence, dt.date(2026, 1, 1), "UTC")


def test_occurrence_ids_are_derived_from_master_and_original_start() -> None:
    master = new_event_id()
    original = dt.datetime(2026, 12, 1, 9, tzinfo=UTC)
    first = occurrence_id(master, original)
    assert first == occurrence_id(master, original) and first != master
    assert first != occurrence_id(master, original + dt.timedelta(days=7))
    assert parse_event_id(first) == (master, original)
    assert parse_event_id(master) == (master, None)
    assert parse_event_id("AAMkAGIAAA") is None and parse_event_id("not base64!") is None


def test_time_zone_names() -> None:
    assert str(resolve_zone("Pacific Standard Time")) == "America/Los_Angeles"
    assert str(resolve_zone("india standard time")) == "Asia/Kolkata"
    assert resolve_zone("UTC") is UTC
    instant = dt.datetime(2026, 7, 1, 12, tzinfo=UTC)
    assert format_local(instant, resolve_zone("AUS Eastern Standard Time")) == "2026-07-01T22:00:00.0000000"
    with pytest.raises(UnknownTimeZone):
        resolve_zone("Atlantis Standard Time")
    with pytest.raises(EventInvalid):
        read_fields({"start": {"dateTime": "2026-01-01T00:00:00", "timeZone": "Nowhere"},
                     "end": {"dateTime": "2026-01-01T01:00:00", "timeZone": "UTC"}}, None)
