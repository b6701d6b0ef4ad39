"""The connector's leases through devhost, Azurite and m365sim: a live run renews what it still holds,
and a run killed midway (kill -9 of its process) leaves rooms that say why they wait, a run record
that reads as interrupted, and everything connected by the next run with no orphan."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from shared.connector.runs import state_of
from shared.models import CalendarStatus, parse_iso, utc_now
from tests.helpers import wait_until
from tests.integration.connector_support import (
    account_with_calendars,
    calendar,
    connector_with_short_leases,
    last_seq,
    set_knobs,
    sim_requests,
    sim_subscriptions,
)

ROOT = Path(__file__).resolve().parents[2]


def _leases(app_context, account) -> dict[str, tuple[str, str, str] | None]:
    rooms = {e: app_context.calendars.calendars.get(account["account_id"], e) for e in account["room_emails"]}
    return {e: (r.lease.owner, r.lease.nonce, r.lease.expires_at) if r.lease else None for e, r in rooms.items()}


def _creates(stack, account, since: int) -> list[dict]:
    return [r for r in sim_requests(stack, account["tenant_id"], since)
            if r["method"] == "POST" and r["path"].lower() == "/v1.0/subscriptions" and r["status"] == 201]


def test_a_live_run_renews_the_leases_it_still_holds(admin, stack, fire, app_context):
    account = account_with_calendars(admin, stack, rooms=3)
    set_knobs(stack, account["tenant_id"], latency_ms=2500)  # every Graph request takes 2.5 s
    connector = connector_with_short_leases(app_context, lease_seconds=3, renew_every_seconds=0.3)
    since = last_seq(stack)
    run = threading.Thread(target=connector.run)
    run.start()
    try:
        email = account["room_emails"][0]
        first = wait_until(lambda: _leases(app_context, account)[email], timeout=60,
                           message="the run claimed nothing")
        owner, nonce, expires_at = first
        # Past the lease it was claimed with, the same claim is still held: renewed, not lapsed.
        renewed = wait_until(lambda: (lease := _leases(app_context, account)[email]) and lease[:2] == (owner, nonce)
                             and lease[2] > expires_at and lease, timeout=60, message="the lease was never renewed")
        wait_until(lambda: utc_now() > parse_iso(expires_at), timeout=10)
        room = calendar(admin, account, email)
        if room["status"] == "connecting":
            assert not room["status_reason"].startswith("waiting for an interrupted run"), room
            assert room["waiting_until"] is None
            running = admin.get("/api/connector/status").json()["running"]
            assert owner in {r["run_id"] for r in running}
        assert renewed[2] > expires_at
        # Another run now claims none of the rooms the live run holds.
        set_knobs(stack, account["tenant_id"], latency_ms=0)
        fire("connector_run")
    finally:
        run.join(timeout=300)
    assert not run.is_alive()
    assert all(calendar(admin, account, e)["status"] == "connected" for e in account["room_emails"])
    assert len(_creates(stack, account, since)) == 3
    assert len(sim_subscriptions(stack, account["tenant_id"])) == 3


def test_a_killed_run_leaves_rooms_that_say_why_they_wait_and_the_next_run_connects_them(
        admin, stack, fire, app_context):
    account = account_with_calendars(admin, stack, rooms=4)
    set_knobs(stack, account["tenant_id"], latency_ms=3000)
    process = subprocess.Popen([sys.executable, "-m", "tests.integration.run_connector", "20", "0.5"], cwd=ROOT,
                               env={**os.environ, **stack.env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        held = wait_until(lambda: [lease for lease in _leases(app_context, account).values() if lease],
                          timeout=90, message="the run in its own process claimed nothing")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    run_id = held[0][0]
    set_knobs(stack, account["tenant_id"], latency_ms=0)

    def interrupted() -> dict | None:
        run = admin.get("/api/connector/status").json()["interrupted_run"]
        return run if run and run["run_id"] == run_id and run["state"] == "interrupted" else None

    killed = wait_until(interrupted, timeout=15, message="the killed run does not read as interrupted")
    assert killed["finished_at"] is None and killed["last_seen_at"]

    def waiting() -> list[dict]:
        rooms = [calendar(admin, account, e) for e in account["room_emails"]]
        return [r for r in rooms if r["status"] == "connecting" and r["waiting_until"]]

    for room in wait_until(waiting, timeout=15, message="no room says it waits for the interrupted run"):
        until = parse_iso(room["waiting_until"])
        assert room["status_reason"] == f"waiting for an interrupted run (until {until:%H:%M} UTC)"
    # Once the leases have lapsed, the next run connects every room, and leaves no orphan in Graph.
    wait_until(lambda: not waiting(), timeout=60, message="the killed run's leases did not lapse")
    fire("connector_run")
    rooms = {e: app_context.calendars.calendars.get(account["account_id"], e) for e in account["room_emails"]}
    assert all(r.status is CalendarStatus.CONNECTED for r in rooms.values()), rooms
    assert sorted(s["id"] for s in sim_subscriptions(stack, account["tenant_id"])) == \
        sorted(r.subscription_id for r in rooms.values())
    # The next run closed the killed run's record as interrupted instead of leaving it open.
    records = app_context.storage.table("ConnectorRuns").query_all("PartitionKey eq 'run'")
    record = next(e for e in records if e.get("run_id") == run_id)
    assert record["interrupted_at"] and not record.get("finished_at")
    assert state_of(record) == "interrupted"
    assert admin.get("/api/connector/status").json()["interrupted_run"] is None  # a run finished since
