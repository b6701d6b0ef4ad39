"""List API figures: p95 per page of `GET /api/accounts/{id}/calendars` and `GET /api/spaces?q=`
against the bare Table query each one wraps, measured in the same run.

Owns the read workload: an account with N calendars seeded straight into the table, N spaces
imported through `POST /api/spaces/import`, then every page of 100 walked through the API and,
right after, every page of the bare query (the same partition, the same page size, the same
continuation) walked with the Table SDK from this process. It never asserts a timing.
"""

from __future__ import annotations

import time

from bench.bench_import import new_account
from bench.report import Figure, ratio
from bench.support import Bench, BenchError, percentile
from shared.accounts import AccountRepository
from shared.models import CalendarStatus

PAGE = 100


def _walk(fetch_page, limit: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Latency of each page (seconds), following continuation tokens for at most `limit` pages."""
    latencies: list[float] = []
    token: str | None = None
    for _ in range(limit):
        started = time.perf_counter()
        token = fetch_page(token)
        latencies.append(time.perf_counter() - started)
        if not token:
            break
    return latencies


def calendars_page(bench: Bench, calendars: int) -> list[Figure]:
    account_id = new_account(AccountRepository(bench.storage.table("Accounts")))
    statuses = [CalendarStatus.ADDED, CalendarStatus.QUEUED, CalendarStatus.CONNECTED]
    for position, status in enumerate(statuses):
        bench.seed_calendars(account_id, (f"room-{i:05d}@list.bench.example" for i in range(calendars)
                                          if i % len(statuses) == position), status=status)
    pages = calendars // PAGE + 1

    def api_page(token: str | None) -> str | None:
        params = {"page_size": str(PAGE), **({"continuation_token": token} if token else {})}
        response = bench.admin.get(f"/api/accounts/{account_id}/calendars", params=params)
        if response.status_code != 200:
            raise BenchError(f"listing calendars answered {response.status_code}: {response.text[:200]}")
        return response.json().get("continuation_token")

    table = bench.calendars

    def bare_page(token: str | None) -> str | None:
        return table.query_page("PartitionKey eq @account", parameters={"account": account_id}, page_size=PAGE,
                                continuation_token=token).continuation_token

    for _ in range(bench.worker_processes):
        api_page(None)  # warm-up: each worker process's first connection and first context use
    api = _walk(api_page, pages)
    bare = _walk(bare_page, pages)
    api_p95, bare_p95 = percentile(api, 0.95) * 1000, percentile(bare, 0.95) * 1000
    return [Figure(f"list calendars p95 ({calendars // 1000}k)" if calendars >= 1000 else
                   f"list calendars p95 ({calendars})", api_p95, "ms", bare_p95, "ms", ratio(api_p95, bare_p95),
                   "<= 5x",
                   note=f"{len(api)} pages of {PAGE} over {calendars:,} calendars; baseline: the same pages as one "
                        "Table query each (PartitionKey = account); the API's first page also counts statuses over "
                        "the whole account, later pages reuse that count")]


def spaces_search(bench: Bench, spaces: int) -> list[Figure]:
    rows = [{"id": f"bench-{i:05d}", "building_id": f"bb{i // 500:02d}", "building_name": f"Bench {i // 500:02d}",
             "floor": str((i % 500) // 50 + 1), "number": f"{i // 500:02d}-{i % 500:03d}",
             "name": f"Bench room {i:05d}", "capacity": 4 + i % 12} for i in range(spaces)]
    for start in range(0, spaces, 5000):
        response = bench.admin.post("/api/spaces/import", json={"spaces": rows[start:start + 5000]})
        if response.status_code != 200:
            raise BenchError(f"importing spaces answered {response.status_code}: {response.text[:200]}")
    pages = spaces // PAGE + 1
    query = "bench"  # every bench space's name contains it: a search that walks them all

    def api_page(token: str | None) -> str | None:
        params = {"q": query, "page_size": str(PAGE), **({"continuation_token": token} if token else {})}
        response = bench.admin.get("/api/spaces", params=params)
        if response.status_code != 200:
            raise BenchError(f"searching spaces answered {response.status_code}: {response.text[:200]}")
        return response.json().get("continuation_token")

    index = bench.storage.table("SpaceIndex")

    def bare_page(token: str | None) -> str | None:
        return index.query_page("PartitionKey eq @pk", parameters={"pk": "space"}, page_size=PAGE,
                                continuation_token=token).continuation_token

    warm_started = time.perf_counter()
    api_page(None)  # the first search after an import loads this process's snapshot
    warm = time.perf_counter() - warm_started
    for _ in range(bench.worker_processes - 1):
        api_page(None)  # and so does each other worker process's first
    api = _walk(api_page, pages)
    bare = _walk(bare_page, pages)
    api_p95, bare_p95 = percentile(api, 0.95) * 1000, percentile(bare, 0.95) * 1000
    return [Figure(f"space search p95 ({spaces // 1000}k)" if spaces >= 1000 else f"space search p95 ({spaces})",
                   api_p95, "ms", bare_p95, "ms", ratio(api_p95, bare_p95), "<= 5x",
                   note=f"q={query!r} matching all {spaces:,} spaces, {len(api)} pages of {PAGE}; baseline: the "
                        f"same pages of the SpaceIndex partition as one Table query each; first search after the "
                        f"import (snapshot load, not in p95, nor the first of each other worker process): "
                        f"{warm * 1000:.0f} ms")]
