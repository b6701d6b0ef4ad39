"""NCRONTAB schedules, six fields, seconds first."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.ncrontab import Schedule, ScheduleError


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize("expression, after, expected", [
    ("0 */15 * * * *", "2026-11-25T10:31:10", "2026-11-25T10:45:00"),
    ("0 */15 * * * *", "2026-11-25T10:45:00", "2026-11-25T11:00:00"),
    ("*/5 * * * * *", "2026-11-25T10:00:03", "2026-11-25T10:00:05"),
    ("0 30 9 * * Mon-Fri", "2026-11-28T12:00:00", "2026-11-30T09:30:00"),
    ("0 0 0 1 Jan *", "2026-11-25T00:00:00", "2027-01-01T00:00:00"),
    ("0 0 12 29 2 *", "2026-03-01T00:00:00", "2028-02-29T12:00:00"),
])
def test_next_occurrence(expression: str, after: str, expected: str) -> None:
    assert Schedule.parse(expression).next_after(at(after)) == at(expected)


@pytest.mark.parametrize("expression", ["* * * * *", "61 * * * * *", "0 */0 * * * *", "0 5-1 * * * *", "a b c d e f"])
def test_bad_schedules_are_refused(expression: str) -> None:
    with pytest.raises(ScheduleError):
        Schedule.parse(expression)
