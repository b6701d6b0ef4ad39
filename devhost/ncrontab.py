"""Six-field NCRONTAB schedules (seconds first), as Azure Functions timer triggers use them.

Owns parsing `{second} {minute} {hour} {day} {month} {day-of-week}` and finding the
next occurrence after an instant, in UTC. It never sleeps or reads a clock itself:
callers pass the instant. Day-of-month and day-of-week combine like cron: when both
are restricted, either may match (NCrontab behaves the same way).
https://learn.microsoft.com/azure/azure-functions/functions-bindings-timer#ncrontab-expressions
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

MONTH_NAMES = {name.lower(): number for number, name in enumerate(calendar.month_abbr) if name}
DAY_NAMES = {name.lower(): (number + 1) % 7 for number, name in enumerate(calendar.day_abbr)}  # sun = 0

# (name, lowest, highest, names)
FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("second", 0, 59, {}),
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day", 1, 31, {}),
    ("month", 1, 12, MONTH_NAMES),
    ("day-of-week", 0, 7, DAY_NAMES),  # cron accepts 7 for Sunday too
)


class ScheduleError(ValueError):
    """The expression is not a valid six-field NCRONTAB schedule."""


@dataclass(frozen=True)
class Schedule:
    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        parts = expression.split()
        if len(parts) != 6:
            raise ScheduleError(f"{expression!r}: expected six fields (second minute hour day month day-of-week)")
        sets = [_parse_field(text, *spec) for text, spec in zip(parts, FIELDS, strict=True)]
        return cls(expression, *sets, days_restricted=parts[3] != "*", weekdays_restricted=parts[5] != "*")

    def matches_day(self, moment: datetime) -> bool:
        if moment.month not in self.months:
            return False
        day_ok = moment.day in self.days
        weekday_ok = (moment.weekday() + 1) % 7 in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return day_ok or weekday_ok
        return day_ok and weekday_ok

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment` (aware; UTC assumed when naive)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        candidate = moment.astimezone(timezone.utc).replace(microsecond=0) + timedelta(seconds=1)
        # Eight years covers every leap-day schedule; anything longer never fires.
        limit = candidate + timedelta(days=366 * 8)
        while candidate < limit:
            if not self.matches_day(candidate):
                candidate = (candidate + timedelta(days=1)).replace(hour=0, minute=0, second=0)
                continue
            if candidate.hour not in self.hours:
                candidate = (candidate + timedelta(hours=1)).replace(minute=0, second=0)
                continue
            if candidate.minute not in self.minutes:
                candidate = (candidate + timedelta(minutes=1)).replace(second=0)
                continue
            if candidate.second not in self.seconds:
                candidate += timedelta(seconds=1)
                continue
            return candidate
        raise ScheduleError(f"{self.expression!r} never fires")


def _value(text: str, name: str, names: dict[str, int]) -> int:
    lowered = text.lower()
    if lowered in names:
        return names[lowered]
    if not text.isdigit():
        raise ScheduleError(f"{name} field: {text!r} is not a number")
    return int(text)


def _parse_field(text: str, name: str, lowest: int, highest: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ScheduleError(f"{name} field: empty list item in {text!r}")
        range_text, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"{name} field: step {step_text!r} must be a positive number")
            step = int(step_text)
        if range_text == "*":
            start, end = lowest, 6 if name == "day-of-week" else highest
        elif "-" in range_text:
            start_text, _, end_text = range_text.partition("-")
            start, end = _value(start_text, name, names), _value(end_text, name, names)
        else:
            start = _value(range_text, name, names)
            # "5/10" means from 5 to the end, every 10 (as in cron).
            end = highest if step_text else start
        if not (lowest <= start <= highest and lowest <= end <= highest) or start > end:
            raise ScheduleError(f"{name} field: {item!r} is outside {lowest}-{highest}")
        values.update(range(start, end + 1, step))
    if name == "day-of-week" and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)
