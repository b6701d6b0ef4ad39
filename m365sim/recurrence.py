"""Recurring series: Graph's `patternedRecurrence` (pattern + range) read from a request, written
back, and expanded into the dates of its occurrences
(learn.microsoft.com/graph/api/resources/patternedrecurrence).

Owns the pattern types daily, weekly, absoluteMonthly, relativeMonthly, absoluteYearly and
relativeYearly, the ranges endDate, numbered and noEnd, and the caps that keep an expansion
bounded. It must never know about times of day, time zones or events (events.py turns dates
into occurrences).
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
INDEXES = ("first", "second", "third", "fourth", "last")
PATTERN_TYPES = ("daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly", "relativeYearly")
RANGE_TYPES = ("endDate", "noEnd", "numbered")
# Outlook refuses numbered series longer than 999 occurrences.
MAX_NUMBERED_OCCURRENCES = 999
# Periods (days, weeks, months or years) scanned by one expansion: a pattern that matches no date
# (say, absoluteYearly on 30 February) must still end.
MAX_PERIODS_SCANNED = 20_000


class RecurrenceInvalid(ValueError):
    """A patternedRecurrence the simulator cannot accept; the message says why."""


@dataclass(frozen=True)
class Recurrence:
    pattern_type: str
    interval: int
    days_of_week: tuple[str, ...]
    day_of_month: int
    month: int
    index: str
    first_day_of_week: str
    range_type: str
    start_date: dt.date
    end_date: dt.date | None
    number_of_occurrences: int
    time_zone: str

    def graph(self) -> dict[str, Any]:
        return {
            "pattern": {"type": self.pattern_type, "interval": self.interval, "month": self.month,
                        "dayOfMonth": self.day_of_month, "daysOfWeek": list(self.days_of_week),
                        "firstDayOfWeek": self.first_day_of_week, "index": self.index},
            "range": {"type": self.range_type, "startDate": self.start_date.isoformat(),
                      "endDate": self.end_date.isoformat() if self.end_date else "0001-01-01",
                      "recurrenceTimeZone": self.time_zone, "numberOfOccurrences": self.number_of_occurrences},
        }

    def with_start(self, start_date: dt.date) -> Recurrence:
        return Recurrence(**{**self.__dict__, "start_date": start_date})

    def dates(self, from_date: dt.date | None = None) -> Iterator[dt.date]:
        """Occurrence dates in order, from the series start (or from about `from_date` when the
        range is not numbered, skipping whole periods that end before it)."""
        first_period = 0
        if from_date is not None and self.range_type != "numbered" and from_date > self.start_date:
            first_period = max(0, self._periods_between(from_date) // self.interval - 1)
        produced = 0
        for period in range(first_period, first_period + MAX_PERIODS_SCANNED):
            for day in self._dates_in_period(period * self.interval):
                if day < self.start_date:
                    continue
                if self.range_type == "endDate" and self.end_date is not None and day > self.end_date:
                    return
                yield day
                produced += 1
                if self.range_type == "numbered" and produced >= self.number_of_occurrences:
                    return

    def _periods_between(self, later: dt.date) -> int:
        start = self.start_date
        if self.pattern_type == "daily":
            return (later - start).days
        if self.pattern_type == "weekly":
            return (later - self._week_start(start)).days // 7
        if self.pattern_type in ("absoluteMonthly", "relativeMonthly"):
            return (later.year - start.year) * 12 + later.month - start.month
        return later.year - start.year

    def _week_start(self, day: dt.date) -> dt.date:
        offset = (day.weekday() - DAYS.index(self.first_day_of_week)) % 7
        return day - dt.timedelta(days=offset)

    def _dates_in_period(self, steps: int) -> list[dt.date]:
        start = self.start_date
        kind = self.pattern_type
        if kind == "daily":
            return [start + dt.timedelta(days=steps)]
        if kind == "weekly":
            week = self._week_start(start) + dt.timedelta(weeks=steps)
            days = [week + dt.timedelta(days=i) for i in range(7)]
            return [d for d in days if DAYS[d.weekday()] in self.days_of_week]
        if kind in ("absoluteMonthly", "relativeMonthly"):
            months = start.year * 12 + start.month - 1 + steps
            year, month = divmod(months, 12)
            month += 1
        else:
            year, month = start.year + steps, self.month
        if year > dt.MAXYEAR:
            return []
        if kind in ("absoluteMonthly", "absoluteYearly"):
            length = calendar.monthrange(year, month)[1]
            # Outlook moves a day past the month's end (31 in April) to the month's last day.
            return [dt.date(year, month, min(self.day_of_month, length))]
        return _relative_day(year, month, self.days_of_week, self.index)


def _relative_day(year: int, month: int, days_of_week: tuple[str, ...], index: str) -> list[dt.date]:
    length = calendar.monthrange(year, month)[1]
    matching = [dt.date(year, month, d) for d in range(1, length + 1)
                if DAYS[dt.date(year, month, d).weekday()] in days_of_week]
    if not matching:
        return []
    position = -1 if index == "last" else INDEXES.index(index)
    return [matching[position]] if position < len(matching) else []


def parse_recurrence(value: Any, default_start: dt.date, default_zone: str) -> Recurrence:
    """A patternedRecurrence from a request; `default_start` is the event's start date."""
    if not isinstance(value, dict):
        raise RecurrenceInvalid("recurrence must be an object with pattern and range")
    pattern, range_ = value.get("pattern"), value.get("range")
    if not isinstance(pattern, dict) or not isinstance(range_, dict):
        raise RecurrenceInvalid("recurrence needs a pattern and a range")
    pattern_type = pattern.get("type")
    if pattern_type not in PATTERN_TYPES:
        raise RecurrenceInvalid(f"recurrence pattern type must be one of {', '.join(PATTERN_TYPES)}")
    interval = pattern.get("interval", 1)
    if isinstance(interval, bool) or not isinstance(interval, int) or not 1 <= interval <= 99:
        raise RecurrenceInvalid("recurrence interval must be an integer from 1 to 99")
    days = tuple(str(d).lower() for d in pattern.get("daysOfWeek") or [])
    if any(d not in DAYS for d in days):
        raise RecurrenceInvalid("daysOfWeek must name days of the week")
    if pattern_type in ("weekly", "relativeMonthly", "relativeYearly") and not days:
        raise RecurrenceInvalid(f"a {pattern_type} pattern needs daysOfWeek")
    day_of_month = _int(pattern.get("dayOfMonth"), 0)
    if pattern_type in ("absoluteMonthly", "absoluteYearly") and not 1 <= day_of_month <= 31:
        raise RecurrenceInvalid(f"a {pattern_type} pattern needs dayOfMonth from 1 to 31")
    month = _int(pattern.get("month"), 0)
    if pattern_type in ("absoluteYearly", "relativeYearly") and not 1 <= month <= 12:
        raise RecurrenceInvalid(f"a {pattern_type} pattern needs month from 1 to 12")
    index = str(pattern.get("index") or "first")
    if index not in INDEXES:
        raise RecurrenceInvalid(f"index must be one of {', '.join(INDEXES)}")
    first_day = str(pattern.get("firstDayOfWeek") or "sunday").lower()
    if first_day not in DAYS:
        raise RecurrenceInvalid("firstDayOfWeek must name a day of the week")
    range_type = range_.get("type")
    if range_type not in RANGE_TYPES:
        raise RecurrenceInvalid(f"recurrence range type must be one of {', '.join(RANGE_TYPES)}")
    start_date = _date(range_.get("startDate")) or default_start
    end_date = _date(range_.get("endDate")) if range_type == "endDate" else None
    if range_type == "endDate" and (end_date is None or end_date < start_date):
        raise RecurrenceInvalid("an endDate range needs an endDate on or after its startDate")
    occurrences = _int(range_.get("numberOfOccurrences"), 0)
    if range_type == "numbered" and not 1 <= occurrences <= MAX_NUMBERED_OCCURRENCES:
        raise RecurrenceInvalid(f"numberOfOccurrences must be from 1 to {MAX_NUMBERED_OCCURRENCES}")
    return Recurrence(pattern_type, interval, days, day_of_month, month, index, first_day, range_type, start_date,
                      end_date, occurrences if range_type == "numbered" else 0,
                      str(range_.get("recurrenceTimeZone") or default_zone))


def _int(value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecurrenceInvalid(f"{value!r} is not an integer")
    return value


def _date(value: Any) -> dt.date | None:
    if not isinstance(value, str) or not value or value.startswith("0001-01-01"):
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError as exc:
        raise RecurrenceInvalid(f"{value!r} is not a date") from exc
