"""The state machines of docs/architecture.md."""

from __future__ import annotations

import pytest

from shared.errors import Conflict
from shared.models import AccountStatus, CalendarStatus


@pytest.mark.parametrize("source, target", [
    (CalendarStatus.ADDED, CalendarStatus.QUEUED),
    (CalendarStatus.QUEUED, CalendarStatus.CONNECTING),
    (CalendarStatus.CONNECTING, CalendarStatus.CONNECTED),
    (CalendarStatus.CONNECTING, CalendarStatus.FAILED),
    (CalendarStatus.FAILED, CalendarStatus.QUEUED),
    (CalendarStatus.CONNECTED, CalendarStatus.QUEUED),
])
def test_designed_calendar_transitions_are_allowed(source: CalendarStatus, target: CalendarStatus) -> None:
    assert source.check(target) is target


@pytest.mark.parametrize("source, target", [
    (CalendarStatus.ADDED, CalendarStatus.CONNECTED),
    (CalendarStatus.ADDED, CalendarStatus.CONNECTING),
    (CalendarStatus.QUEUED, CalendarStatus.CONNECTED),
    (CalendarStatus.FAILED, CalendarStatus.CONNECTED),
])
def test_shortcuts_in_the_calendar_machine_are_refused(source: CalendarStatus, target: CalendarStatus) -> None:
    with pytest.raises(Conflict):
        source.check(target)


def test_a_pending_account_cannot_need_reauthentication() -> None:
    with pytest.raises(Conflict):
        AccountStatus.PENDING_CONSENT.check(AccountStatus.NEEDS_REAUTH)
    assert AccountStatus.VERIFIED.check(AccountStatus.NEEDS_REAUTH) is AccountStatus.NEEDS_REAUTH
