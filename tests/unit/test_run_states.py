"""Pure rules of a connector run's record and of what a room waiting on a run's lease says."""

from __future__ import annotations

from datetime import timedelta

from shared.calendars import Calendar
from shared.connector.runs import state_of
from shared.models import CalendarStatus, iso, iso_precise, utc_now
from shared.storage import Lease

NOW = utc_now()


def test_a_run_record_reads_as_running_only_while_its_heartbeat_and_deadline_hold():
    alive = {"started_at": iso(NOW), "alive_until": iso_precise(NOW + timedelta(seconds=5)),
             "deadline_at": iso(NOW + timedelta(minutes=10))}
    assert state_of(alive, NOW) == "running"
    assert state_of({**alive, "finished_at": iso(NOW)}, NOW) == "finished"
    assert state_of(alive, NOW + timedelta(seconds=6)) == "interrupted"  # the heartbeat stopped
    assert state_of({**alive, "deadline_at": iso(NOW - timedelta(seconds=1))}, NOW) == "interrupted"
    assert state_of({**alive, "interrupted_at": iso(NOW)}, NOW) == "interrupted"
    assert state_of({"started_at": iso(NOW), "finished_at": ""}, NOW) == "interrupted"  # an old open record


def _connecting(owner: str, lease_for: timedelta) -> Calendar:
    room = Calendar("acct", "room@x.example", status=CalendarStatus.CONNECTING,
                    status_reason="connecting: checking the mailbox and subscribing")
    room.lease = Lease.new(owner, lease_for)
    return room


def test_a_room_held_by_a_run_that_is_gone_says_it_waits_and_until_when():
    room = _connecting("killed", timedelta(minutes=2))
    shown = room.to_api(live_runs={"another"})
    assert shown["waiting_until"] == room.lease.expires_at
    assert shown["status_reason"] == f"waiting for an interrupted run (until {room.lease.expires:%H:%M} UTC)"
    assert shown["status"] == "connecting"


def test_a_room_of_a_live_run_or_with_a_lapsed_lease_says_what_it_did():
    for room, live_runs in ((_connecting("alive", timedelta(minutes=2)), {"alive"}),
                            (_connecting("killed", timedelta(seconds=-1)), set()),
                            (_connecting("killed", timedelta(minutes=2)), None)):
        shown = room.to_api(live_runs=live_runs)
        assert shown["waiting_until"] is None
        assert shown["status_reason"] == "connecting: checking the mailbox and subscribing"
