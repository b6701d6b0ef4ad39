"""CSV import figures: rows/s through the blob trigger vs row-at-a-time upserts and vs Azurite's
raw entity-group-transaction throughput, and the import's peak memory at two sizes.

Owns the import workload on the running stack: spaces seeded for the run (`bench_import.seed_spaces`,
50 buildings' worth, one per linked row) and a file of N new calendars, every other one naming a
space by its number (`bench_import.csv_bytes`, the issue's workload), dropped into the uploads
container, where devhost's blob trigger picks it up and runs `import_calendar_csv`; the figure is
the wall time from upload to the import record saying `completed`. Baselines run against the same
Azurite in the same run and do the same work: one row at a time (`bench_import.one_row`), and
the import's writes as bare transactions (`bench_import.raw_transactions`); the three are
measured in turn, twice, and each figure is its best round. Memory is measured in
a fresh process per size (`bench.memory_probe`, email-only files). It never asserts a timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

from bench.bench_import import csv_bytes, csv_rows, new_account, one_row, raw_transactions, seed_spaces
from bench.report import Figure, ratio
from bench.support import Bench, BenchError, poll, timed
from devhost.stack import ROOT
from shared.accounts import AccountRepository
from shared.calendars import CalendarRepository
from shared.imports import PARALLEL_TRANSACTIONS
from shared.spaces import SpaceDirectory, SpaceRow
from shared.storage import MAX_BATCH_SIZE

PROBE_CONTAINER = "bench-memory"
ROUNDS = 2


def import_throughput(bench: Bench, rows: int, baseline_rows: int, rounds: int = ROUNDS) -> list[Figure]:
    """The import and its two baselines, measured in turn `rounds` times (the machine is shared:
    another process's burst slows whichever measurement it lands on), each figure the best of
    its rounds; every round has spaces, accounts and files of its own."""
    index = bench.storage.table("SpaceIndex")
    linked, baseline_linked = (rows + 1) // 2, (baseline_rows + 1) // 2
    spaces = seed_spaces(index, rounds * (linked + baseline_linked))
    import_rates: list[float] = []
    row_rates: list[float] = []
    raw_rates: list[float] = []
    for number in range(rounds):
        own = spaces[number * (linked + baseline_linked):(number + 1) * (linked + baseline_linked)]
        content = csv_bytes(rows, [space.number for space in own[:linked]])
        import_rates.append(rows / _import_seconds(bench, content, rows))
        row_rates.append(baseline_rows / _row_at_a_time_seconds(bench, baseline_rows, own[linked:]))
        raw_rates.append(rows / _raw_seconds(bench, content, own[:linked]))
    import_rate, row_rate, raw_rate = max(import_rates), max(row_rates), max(raw_rates)

    def runs(rates: list[float]) -> str:
        return ", ".join(f"{rate:,.0f}" for rate in rates)

    rounds_note = (f"best of {rounds} rounds (import {runs(import_rates)}; one at a time {runs(row_rates)}; "
                   f"raw {runs(raw_rates)} rows/s)")
    file_note = (f"{rows:,}-row file ({len(content) / 1048576:.1f} MiB, {linked:,} rows naming a seeded space "
                 "by its number), upload to import record completed")
    return [
        Figure("CSV import vs row-at-a-time", import_rate, "rows/s", row_rate, "rows/s", ratio(import_rate, row_rate),
               ">= 5x", note=f"{file_note}; baseline: {baseline_rows:,} rows of the same shape one at a time "
                             f"(resolve + claim the space, upsert the calendar); {rounds_note}"),
        Figure("CSV import vs raw Azurite EGT", import_rate, "rows/s", raw_rate, "rows/s",
               ratio(import_rate, raw_rate), ">= 0.80x",
               note=f"baseline: the import's writes for {rows:,} rows ({linked:,} link merges on SpaceIndex, "
                    f"{rows:,} calendar creates) as transactions of {MAX_BATCH_SIZE}, {PARALLEL_TRANSACTIONS} in "
                    "flight like the import's; no parsing, no reads, no report (the import reads the blob twice, "
                    "reads the spaces it names, and writes a report)"),
    ]


def _import_seconds(bench: Bench, content: bytes, rows: int) -> float:
    """Upload the file into a new account's folder; seconds until the import record says completed."""
    accounts = AccountRepository(bench.storage.table("Accounts"))
    uploads = bench.storage.blobs.get_container_client(bench.stack.env.get("UPLOADS_CONTAINER", "calendar-uploads"))
    imports = bench.storage.table("Imports")
    account_id = new_account(accounts)
    import_id = f"bench-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    uploads.upload_blob(f"{account_id}/{import_id}.csv", content, overwrite=True)

    def finished() -> dict | None:
        record = imports.get(account_id, import_id)
        return record if record and record.get("status") in ("completed", "failed") else None

    record = poll(finished, timeout=max(120.0, rows / 50), interval=0.5, what=f"the import of {rows:,} rows")
    seconds = time.perf_counter() - started
    if record.get("status") != "completed" or int(record.get("added") or 0) != rows:
        raise BenchError(f"the import ended {record.get('status')} with {record.get('added')} added: "
                         f"{record.get('error')}")
    return seconds


def _row_at_a_time_seconds(bench: Bench, rows: int, spaces: list[SpaceRow]) -> float:
    """What a naive importer does: the same work one row at a time (validate, resolve and claim
    the space with a read and an If-Match update, upsert the calendar), over spaces of its own."""
    directory = SpaceDirectory(bench.storage.table("Spaces"), bench.storage.table("SpaceIndex"))
    calendars = CalendarRepository(bench.calendars)
    account_id = new_account(AccountRepository(bench.storage.table("Accounts")))
    lines = csv_rows(csv_bytes(rows, [space.number for space in spaces]))
    seconds, _ = timed(lambda: [one_row(directory, calendars, account_id, email, room) for email, room in lines])
    return seconds


def _raw_seconds(bench: Bench, content: bytes, spaces: list[SpaceRow]) -> float:
    """Azurite's raw throughput for the import's own writes (the link merges on the spaces the
    import linked, the calendars created, under another account) as bare entity-group transactions
    of 100, as many in flight as the import keeps: the ceiling for any importer of these rows."""
    account_id = new_account(AccountRepository(bench.storage.table("Accounts")))
    rows = [(email.replace("@", "-raw@"), room) for email, room in csv_rows(content)]
    space_ids = {space.number: space.space_id for space in spaces}
    seconds, _ = timed(lambda: raw_transactions(bench.storage.table("SpaceIndex"), bench.calendars, account_id, rows,
                                                space_ids))
    return seconds


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
