"""The ConnectorRuns table (PartitionKey `run`, RowKey = inverted start time + run id): one record per run.

Owns writing a run's record when it starts and when it ends, and reading the latest for
`GET /api/connector/status`. Newest first is the table's own order. It never decides work.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.models import iso, utc_now
from shared.ncrontab import Schedule
from shared.storage import Table

RUN_PARTITION = "run"
COUNTED = ("claimed", "connected", "renewed", "failed", "throttled", "left_for_next_run")


class RunRecords:
    def __init__(self, table: Table, schedule: Schedule) -> None:
        self.table = table
        self.schedule = schedule

    def start(self, run_id: str, started: datetime) -> dict[str, Any]:
        row_key = f"{10**13 - int(started.timestamp() * 1000):013d}-{run_id}"
        record = {"PartitionKey": RUN_PARTITION, "RowKey": row_key, "run_id": run_id, "started_at": iso(started),
                  "finished_at": ""}
        self.table.upsert(record)
        return record

    def finish(self, record: dict[str, Any], summary: dict[str, Any]) -> None:
        self.table.upsert({**record, **summary})

    def status(self) -> dict[str, Any]:
        page = self.table.query_page("PartitionKey eq @pk", parameters={"pk": RUN_PARTITION}, page_size=20)
        finished = [e for e in page.items if e.get("finished_at")]
        latest = (finished or page.items or [None])[0]
        last_run = None
        if latest is not None:
            last_run = {"started_at": latest.get("started_at"), "finished_at": latest.get("finished_at") or None,
                        **{name: int(latest.get(name) or 0) for name in COUNTED}}
        return {"last_run": last_run, "next_run_at": iso(self.schedule.next_after(utc_now()))}
