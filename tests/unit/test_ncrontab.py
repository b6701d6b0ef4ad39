"""NCRONTAB parsing and next occurrences (devhost.ncrontab)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from shared.ncrontab import Schedule, ScheduleError


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 */15 * * * *", at(2024, 1, 1, 10, 7, 3), at(2024, 1, 1, 10, 15, 0)),
        ("0 */15 * * * *", at(2024, 1, 1, 10, 15, 0), at(2024, 1, 1, 10, 30, 0)),
        ("* * * * * *", at(2024, 1, 1, 10, 0, 0), at(2024, 1, 1, 10, 0, 1)),
        ("*/10 * * * * *", at(2024, 1, 1, 10, 0, 55), at(2024, 1, 1, 10, 1, 0)),
        ("0 0 9-17/4 * * *", at(2024, 1, 1, 10, 0, 0), at(2024, 1, 1, 13, 0, 0)),
        ("0 30 9 * * 1-5", at(2024, 1, 6, 0, 0, 0), at(2024, 1, 8, 9, 30, 0)),  # Saturday -> Monday
        ("0 30 9 * * mon-fri", at(2024, 1, 6, 0, 0, 0), at(2024, 1, 8, 9, 30, 0)),
        ("0 0 0 * * 7", at(2024, 1, 1, 0, 0, 0), at(2024, 1, 7, 0, 0, 0)),  # 7 is Sunday too
        ("0 0 0 1 jan,jul *", at(2024, 2, 1, 0, 0, 0), at(2024, 7, 1, 0, 0, 0)),
        ("0 0 0 29 feb *", at(2024, 3, 1, 0, 0, 0), at(2028, 2, 29, 0, 0, 0)),
        ("5,10 0 0 * * *", at(2024, 1, 1, 0, 0, 5), at(2024, 1, 1, 0, 0, 10)),
        ("0 0 0 31 12 *", at(2024, 12, 31, 23, 59, 59), at(2025, 12, 31, 0, 0, 0)),
    ],
)
def test_next_occurrence(expression: str, after: datetime, expected: datetime) -> None:
    assert Schedule.parse(expression).next_after(after) == expected


def test_day_of_month_and_weekday_either_matches_when_both_are_restricted() -> None:
    # Like cron: the 13th or any Friday.
    schedule = Schedule.parse("0 0 0 13 * 5")
    assert schedule.next_after(at(2024, 1, 1)) == at(2024, 1, 5)
    assert schedule.next_after(at(2024, 1, 12, 1)) == at(2024, 1, 13)


def test_next_occurrence_is_strictly_after_and_whole_seconds() -> None:
    assert Schedule.parse("* * * * * *").next_after(datetime(2024, 1, 1, 0, 0, 0, 500000,
                                                             tzinfo=timezone.utc)) == at(2024, 1, 1, 0, 0, 1)


@pytest.mark.parametrize(
    "expression",
    ["* * * * *", "* * * * * * *", "60 * * * * *", "* * 24 * * *", "* * * 0 * *", "* * * * 13 *",
     "*/0 * * * * *", "5-1 * * * * *", "a * * * * *", "1,,2 * * * * *", "0 0 0 30 feb *"],
)
def test_invalid_schedules_are_refused(expression: str) -> None:
    with pytest.raises(ScheduleError):
        Schedule.parse(expression).next_after(at(2024, 1, 1))
