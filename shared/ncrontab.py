"""NCRONTAB schedules as Azure Functions reads them: six fields, seconds first, UTC.

Owns parsing a schedule and finding its next occurrence, for the page's "next
run at" and for devhost's timers. It never sleeps or schedules anything itself.
https://learn.microsoft.com/azure/azure-functions/functions-bindings-timer#ncrontab-expressions
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_NAMES = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10,
    "nov": 11, "dec": 12, "sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
}
# (name, lowest, highest) of the six fields.
_FIELDS = (("second", 0, 59), ("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12),
           ("day of week", 0, 6))


class ScheduleError(ValueError):
    """The schedule is not a valid six-field NCRONTAB expression."""


def _value(text: str, name: str, low: int, high: int) -> int:
    key = text.lower()
    number = _NAMES[key] if key in _NAMES else None
    if number is None:
        if not text.isdigit():
            raise ScheduleError(f"the {name} field has {text!r}, not a number")
        number = int(text)
    if name == "day of week" and number == 7:
        number = 0
    if not low <= number <= high:
        raise ScheduleError(f"the {name} field has {number}, outside {low}-{high}")
    return number


def _field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"the {name} field has a bad step {step_text!r}")
            step = int(step_text)
        if part == "*":
            start, end = low, high
        elif "-" in part:
            first, last = part.split("-", 1)
            start, end = _value(first, name, low, high), _value(last, name, low, high)
            if end < start:
                raise ScheduleError(f"the {name} field has a backwards range {part!r}")
        else:
            start = _value(part, name, low, high)
            end = high if step > 1 else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_restricted: bool
    weekdays_restricted: bool
    expression: str = ""

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        parts = expression.split()
        if len(parts) != 6:
            raise ScheduleError(f"{expression!r} has {len(parts)} fields; NCRONTAB needs six, seconds first")
        fields = [_field(text, *spec) for text, spec in zip(parts, _FIELDS, strict=True)]
        return cls(*fields, days_restricted=parts[3] != "*", weekdays_restricted=parts[5] != "*",
                   expression=" ".join(parts))

    def _day_matches(self, moment: datetime) -> bool:
        weekday = (moment.weekday() + 1) % 7  # Python: Monday=0; cron: Sunday=0
        in_days, in_weekdays = moment.day in self.days, weekday in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays  # cron's rule: either restriction may match
        return in_days and in_weekdays

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment` (UTC)."""
        candidate = moment.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        limit = candidate + timedelta(days=366 * 5)
        while candidate < limit:
            if candidate.month not in self.months:
                candidate = (candidate.replace(day=1, hour=0, minute=0, second=0) + timedelta(days=32)).replace(day=1)
                continue
            if not self._day_matches(candidate):
                candidate = candidate.replace(hour=0, minute=0, second=0) + timedelta(days=1)
                continue
            if candidate.hour not in self.hours:
                candidate = candidate.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            if candidate.minute not in self.minutes:
                candidate = candidate.replace(second=0) + timedelta(minutes=1)
                continue
            if candidate.second not in self.seconds:
                candidate += timedelta(seconds=1)
                continue
            return candidate
        raise ScheduleError("the schedule has no occurrence in the next five years")
