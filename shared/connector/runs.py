"""The ConnectorRuns table (PartitionKey `run`, RowKey = inverted start time + run id): one record per run.

Owns writing a run's record when it starts, while it is alive (`alive_until`, pushed on by
the run's heartbeat) and when it ends; what state a record is in (`running`, `finished`, or
`interrupted`: not finished, and its heartbeat stopped or it is past its time limit plus a
margin, as a killed process leaves it); marking records of runs that are gone as interrupted
(the next run does, If-Match, so a run that does finish late still says so); and reading the
latest for `GET /api/connector/status`. Newest first is the table's own order. It never
decides work.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shared.errors import ConcurrencyConflict
from shared.models import iso, iso_precise, parse_iso, utc_now
from shared.ncrontab import Schedule
from shared.storage import Table

RUN_PARTITION = "run"
COUNTED = ("claimed", "connected", "renewed", "failed", "throttled", "left_for_next_run")
# Past its time limit a run claims nothing more; what it has in flight may finish within this.
# With the default 480 s limit that is the Functions host's 10-minute timeout, when it is killed.
RUN_MARGIN = timedelta(minutes=2)
# The newest records read to tell which runs are alive (runs start every 15 minutes).
RECENT_RUNS = 20

RUNNING, FINISHED, INTERRUPTED = "running", "finished", "interrupted"


def state_of(entity: dict[str, Any], now: datetime | None = None) -> str:
    """What a record says about its run now."""
    if entity.get("finished_at"):
        return FINISHED
    if entity.get("interrupted_at"):
        return INTERRUPTED
    moment = now or utc_now()
    alive_until, deadline_at = parse_iso(entity.get("alive_until")), parse_iso(entity.get("deadline_at"))
    if alive_until is None or alive_until <= moment or (deadline_at is not None and deadline_at <= moment):
        return INTERRUPTED
    return RUNNING


class RunRecords:
    def __init__(self, table: Table, schedule: Schedule) -> None:
        self.table = table
        self.schedule = schedule

    def start(self, run_id: str, started: datetime, *, time_limit_seconds: float,
              alive_for: timedelta) -> dict[str, Any]:
        """Write the run's record; records of runs that are gone are marked interrupted first."""
        self.mark_interrupted(started)
        row_key = f"{10**13 - int(started.timestamp() * 1000):013d}-{run_id}"
        record = {"PartitionKey": RUN_PARTITION, "RowKey": row_key, "run_id": run_id, "started_at": iso(started),
                  "finished_at": "", "heartbeat_at": iso(started),
                  "alive_until": iso_precise(started + alive_for),
                  "deadline_at": iso(started + timedelta(seconds=time_limit_seconds) + RUN_MARGIN)}
        self.table.upsert(record)
        return record

    def heartbeat(self, record: dict[str, Any], alive_for: timedelta) -> None:
        """The run is alive: its record says so for `alive_for` more (only the run writes it)."""
        now = utc_now()
        record.update(heartbeat_at=iso(now), alive_until=iso_precise(now + alive_for))
        self.table.upsert(record)

    def finish(self, record: dict[str, Any], summary: dict[str, Any]) -> None:
        self.table.upsert({**record, **summary})

    def _recent(self) -> list[dict[str, Any]]:
        return self.table.query_page("PartitionKey eq @pk", parameters={"pk": RUN_PARTITION},
                                     page_size=RECENT_RUNS).items

    def mark_interrupted(self, now: datetime | None = None) -> None:
        """Close the records of runs that never finished and are gone (If-Match: one that
        finishes or is marked meanwhile is left as it now is)."""
        moment = now or utc_now()
        for entity in self._recent():
            if state_of(entity, moment) == INTERRUPTED and not entity.get("finished_at") \
                    and not entity.get("interrupted_at"):
                try:
                    self.table.update({**entity, "interrupted_at": iso(moment)})
                except ConcurrencyConflict:
                    continue

    def live_run_ids(self) -> set[str]:
        """The runs alive now (among the recent ones): whose leases are being kept."""
        now = utc_now()
        return {str(e.get("run_id")) for e in self._recent() if state_of(e, now) == RUNNING}

    def status(self) -> dict[str, Any]:
        """The last finished run (or, when none is, the last one that is over), the newest run
        interrupted since it (killed midway: its rooms wait for their leases), the runs alive
        now, and the next scheduled run."""
        now = utc_now()
        records = [(entity, state_of(entity, now)) for entity in self._recent()]  # newest first
        finished = next((record for record in records if record[1] == FINISHED), None)
        interrupted = next((record for record in records if record[1] == INTERRUPTED), None)
        last = finished or interrupted
        newer = interrupted is not None and (finished is None or interrupted[0]["RowKey"] < finished[0]["RowKey"])
        return {"last_run": _summary(*last) if last else None,
                "interrupted_run": _summary(*interrupted) if newer and interrupted else None,
                "running": [_summary(entity, state) for entity, state in records if state == RUNNING],
                "next_run_at": iso(self.schedule.next_after(now))}


def _summary(entity: dict[str, Any], state: str) -> dict[str, Any]:
    return {"run_id": entity.get("run_id"), "state": state, "started_at": entity.get("started_at"),
            "finished_at": entity.get("finished_at") or None,
            # When the run was last known alive: its finish, or its last heartbeat.
            "last_seen_at": entity.get("finished_at") or entity.get("heartbeat_at") or entity.get("started_at"),
            **{name: int(entity.get(name) or 0) for name in COUNTED}}
