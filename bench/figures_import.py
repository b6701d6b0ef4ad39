"""CSV import figures: rows/s through the blob trigger vs row-at-a-time upserts and vs Azurite's
raw entity-group-transaction throughput, and the import's peak memory at two sizes.

Owns the import workload on the running stack: a file of N new calendars (`bench_import.csv_bytes`,
email only, the shape of an automation's bulk add) dropped into the uploads container, where
devhost's blob trigger picks it up and runs `import_calendar_csv`; the figure is the wall time
from upload to the import record saying `completed`. Baselines run against the same Azurite in
the same run. Memory is measured in a fresh process per size (`bench.memory_probe`). It never
asserts a timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from bench.bench_import import csv_bytes, new_account
from bench.report import Figure, ratio
from bench.support import Bench, BenchError, poll, timed
from devhost.stack import ROOT
from shared.accounts import AccountRepository
from shared.calendars import Calendar, normalise_email
from shared.csv_import import PARALLEL_TRANSACTIONS
from shared.models import iso, utc_now
from shared.storage.tables import MAX_BATCH_SIZE

PROBE_CONTAINER = "bench-memory"


def _emails(rows: int) -> list[str]:
    return [line.split(",")[0] for line in csv_bytes(rows).decode().splitlines()[1:]]


def import_throughput(bench: Bench, rows: int, baseline_rows: int) -> list[Figure]:
    accounts = AccountRepository(bench.storage.table("Accounts"))
    uploads = bench.storage.blobs.get_container_client(bench.stack.env.get("UPLOADS_CONTAINER", "calendar-uploads"))
    imports = bench.storage.table("Imports")

    account_id = new_account(accounts)
    import_id = f"bench-{uuid.uuid4().hex[:8]}"
    content = csv_bytes(rows)
    started = time.perf_counter()
    uploads.upload_blob(f"{account_id}/{import_id}.csv", content, overwrite=True)

    def finished() -> dict | None:
        record = imports.get(account_id, import_id)
        return record if record and record.get("status") in ("completed", "failed") else None

    record = poll(finished, timeout=max(120.0, rows / 50), interval=0.1, what=f"the import of {rows:,} rows")
    import_seconds = time.perf_counter() - started
    if record.get("status") != "completed" or int(record.get("added") or 0) != rows:
        raise BenchError(f"the import ended {record.get('status')} with {record.get('added')} added: "
                         f"{record.get('error')}")
    import_rate = rows / import_seconds

    # Baseline 1: what a naive importer does, one upsert request per row (validated the same way).
    table = bench.calendars
    baseline_account = new_account(accounts)
    emails = _emails(baseline_rows)

    def row_at_a_time() -> None:
        for email in emails:
            table.upsert(Calendar(account_id=baseline_account, email=normalise_email(email),
                                  added_at=iso(utc_now()), added_by="bench").to_entity())

    row_seconds, _ = timed(row_at_a_time)
    row_rate = baseline_rows / row_seconds

    # Baseline 2: Azurite's raw throughput for the same rows as entity-group transactions of 100,
    # with as many in flight as the import keeps: the ceiling for any importer of these rows.
    raw_account = new_account(accounts)
    now = iso(utc_now())
    entities = [Calendar(account_id=raw_account, email=email, added_at=now, added_by="bench").to_entity()
                for email in _emails(rows)]
    chunks = [entities[start:start + MAX_BATCH_SIZE] for start in range(0, rows, MAX_BATCH_SIZE)]

    def raw_transactions() -> None:
        with ThreadPoolExecutor(max_workers=PARALLEL_TRANSACTIONS) as pool:
            list(pool.map(lambda chunk: table.submit_in_batches(("create", e) for e in chunk), chunks))

    raw_seconds, _ = timed(raw_transactions)
    raw_rate = rows / raw_seconds

    file_note = f"{rows:,}-row file ({len(content) / 1048576:.1f} MiB), upload to import record completed"
    return [
        Figure("CSV import vs row-at-a-time", import_rate, "rows/s", row_rate, "rows/s", ratio(import_rate, row_rate),
               ">= 5x", note=f"{file_note}; baseline: {baseline_rows:,} single upserts"),
        Figure("CSV import vs raw Azurite EGT", import_rate, "rows/s", raw_rate, "rows/s",
               ratio(import_rate, raw_rate), ">= 0.80x",
               note=f"baseline: the same {rows:,} rows as transactions of {MAX_BATCH_SIZE}, {PARALLEL_TRANSACTIONS} in "
                    "flight like the import's, no parsing, no report (the import reads the blob twice and writes "
                    "a report)"),
    ]


def _probe(bench: Bench, rows: int) -> dict:
    accounts = AccountRepository(bench.storage.table("Accounts"))
    container = bench.storage.blobs.get_container_client(PROBE_CONTAINER)
    if not container.exists():
        container.create_container()
    name = f"{new_account(accounts)}/memory-{rows}.csv"
    container.upload_blob(name, csv_bytes(rows), overwrite=True)
    done = subprocess.run([sys.executable, "-m", "bench.memory_probe", bench.stack.storage_connection_string,
                           PROBE_CONTAINER, name], cwd=ROOT, capture_output=True, text=True, timeout=1800,
                          check=False)
    if done.returncode != 0:
        raise BenchError(f"the memory probe for {rows:,} rows failed: {done.stderr.strip()[-300:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result.get("added") != rows:
        raise BenchError(f"the memory probe imported {result.get('added')} of {rows:,} rows ({result.get('status')})")
    return result


def import_memory(bench: Bench, small_rows: int, large_rows: int) -> list[Figure]:
    small = _probe(bench, small_rows)
    large = _probe(bench, large_rows)
    mib = 1048576
    large_peak, small_peak = large["peak_rss_bytes"] / mib, small["peak_rss_bytes"] / mib
    return [Figure(f"import memory {large_rows // 1000}k vs {small_rows // 1000}k rows", large_peak, "MiB",
                   small_peak, "MiB", ratio(large_peak, small_peak), "<= 1.3x",
                   note=f"peak RSS of a fresh process running the import (Python + SDKs at start: "
                        f"{large['rss_before_bytes'] / mib:.0f} MiB); {large_rows:,} vs {small_rows:,} rows")]
