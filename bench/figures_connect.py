"""Connect figures: queued calendars connected by the timer against m365sim with Graph's latency
and limits, vs the same work one request at a time; several tenants at once; and under throttling.

Owns the connect workload. Each tenant is a fresh m365sim tenant with N rooms, taken through the
product's admin consent (only verified accounts are connected); its N calendars are written
`queued` straight into the Calendars table, m365sim is set to answer with 50 ms latency and to
enforce Graph's limits (4 concurrent requests per mailbox, ~1,000 subscription writes per tenant
per 20 s), and `connector_run` is fired through devhost until every calendar is connected (a
calendar the connector scheduled for later is waited for until its `next_attempt_at`). When a
figure is done its tenant's consent is revoked in the sim, so later runs skip it after one
refused token instead of listing its subscriptions. The request log of m365sim
(`/_sim/requests`) is the witness for "no request before its Retry-After" and for the request
count. It never asserts a timing.
https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

from bench.report import Figure, ratio
from bench.support import Bench, BenchError, Load
from bench.sync_rooms import wait_for_quiet
from shared.context import AppContext
from shared.graph import subscription_expiry
from shared.models import CalendarStatus, parse_iso, utc_now
from shared.notifications import client_state_for, new_nonce
from shared.settings import Settings

LATENCY_MS = 50
# Graph: about 1,000 subscription writes per app per tenant per 20 s.
WRITE_LIMIT_PER_SECOND = 1000 / 20
# One room costs three reads in a $batch (mailbox, its calendar, its place) and one POST /subscriptions.
REQUESTS_PER_ROOM = 4
ROOMS_PER_BATCH = 6
CONNECT_FIGURES = ["connect vs one request at a time", "connect vs subscription-write limit",
                   "connect, several tenants vs one"]
CLOCK_TOLERANCE = 0.02
THROTTLING_FIGURES = ["throttled: calendars connected", "throttled: retried before Retry-After",
                      "throttled: requests vs minimum"]


def _prepare(bench: Bench, rooms: int, **knobs: Any) -> dict[str, Any]:
    account = bench.verified_account(rooms)
    emails = [f"room-{i:05d}@{account['domain']}" for i in range(rooms)]
    bench.seed_calendars(account["account_id"], emails)
    bench.set_knobs(account["tenant_id"], latency_ms=LATENCY_MS, enforce_limits=True, **knobs)
    return account


def _retire(bench: Bench, accounts: list[dict[str, Any]]) -> None:
    for account in accounts:
        bench.sim_call("POST", f"/_sim/tenants/{account['tenant_id']}/consent", json={"granted": False})


def _drive(bench: Bench, accounts: list[dict[str, Any]], total: int, timeout: float) -> tuple[float, int, int]:
    """Fire the timer until every calendar of `accounts` is connected, or nothing more can happen
    before `timeout`. Returns (seconds, connected, runs)."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    runs = 0
    while True:
        bench.fire("connector_run", timeout=max(60.0, timeout))
        runs += 1
        connected, waiting_until = 0, None
        for account in accounts:
            for entity in bench.calendars.query_all("PartitionKey eq @a", parameters={"a": account["account_id"]},
                                                    select=["status", "next_attempt_at"]):
                if entity.get("status") == CalendarStatus.CONNECTED.value:
                    connected += 1
                elif entity.get("status") == CalendarStatus.FAILED.value:
                    due = parse_iso(entity.get("next_attempt_at") or None)
                    if due is not None and (waiting_until is None or due < waiting_until):
                        waiting_until = due
        elapsed = time.perf_counter() - started
        if connected >= total:
            return elapsed, connected, runs
        wait = max(0.0, (waiting_until - utc_now()).total_seconds()) if waiting_until else 0.0
        if time.monotonic() + wait > deadline:
            return elapsed, connected, runs
        if wait:
            # The connector scheduled these for later (Retry-After or backoff): the next timer run
            # after that moment picks them up, so fire then, as the schedule would.
            time.sleep(wait + 0.5)


def _serial_rate(bench: Bench, rooms: int) -> float:
    """The same per-room work (three reads, one subscription) one request at a time, from here."""
    tenant = bench.new_tenant(rooms, consented=True)
    bench.set_knobs(tenant["id"], latency_ms=LATENCY_MS, enforce_limits=True)
    context = AppContext.build(Settings.from_environment(bench.stack.env))
    graph, signing_key = context.graph, context.settings.state_signing_key
    emails = [f"room-{i:05d}@{tenant['domain']}" for i in range(rooms)]
    started = time.perf_counter()
    for email in emails:
        user = graph.get(tenant["id"], f"users/{email}", {"$select": "id,displayName,mail,userPrincipalName"})
        graph.get(tenant["id"], f"users/{email}/calendar", {"$select": "id"})
        graph.get(tenant["id"], f"places/{email}")
        context.connector.subscriptions.create(tenant["id"], user["id"],
                                     client_state_for(signing_key, "serial", email, new_nonce()),
                                     subscription_expiry())
    seconds = time.perf_counter() - started
    bench.sim_call("POST", f"/_sim/tenants/{tenant['id']}/consent", json={"granted": False})
    return rooms / seconds


def connect(bench: Bench, calendars: int, serial_calendars: int, tenants: int, per_tenant: int) -> list[Figure]:
    single = _prepare(bench, calendars)
    wait_for_quiet(bench)  # each figure starts with the sync at rest (consent asks for a readiness check)
    load = Load(bench.stack)
    seconds, connected, runs = _drive(bench, [single], calendars, timeout=max(300.0, calendars * 0.5))
    single_load = load.text(connected, "room")
    _retire(bench, [single])
    if connected == 0:
        raise BenchError(f"no calendar was connected in {seconds:.0f} s ({runs} runs)")
    rate = connected / seconds
    serial = _serial_rate(bench, serial_calendars)

    group = [_prepare(bench, per_tenant) for _ in range(tenants)]
    wait_for_quiet(bench)  # the first tenant's first rounds are not this figure's work
    load = Load(bench.stack)
    many_seconds, many_connected, many_runs = _drive(bench, group, tenants * per_tenant,
                                                     timeout=max(300.0, tenants * per_tenant * 0.5))
    many_load = load.text(many_connected, "room")
    _retire(bench, group)
    many_rate = many_connected / many_seconds
    done = f"{connected:,} of {calendars:,} connected in {seconds:.0f} s ({runs} timer runs); {single_load}"
    return [
        Figure("connect vs one request at a time", rate, "rooms/s", serial, "rooms/s", ratio(rate, serial), "—",
               note=f"1 tenant, {done}; baseline: {serial_calendars} rooms, 4 requests each, one at a time; "
                    f"m365sim latency {LATENCY_MS} ms, limits enforced"),
        Figure("connect vs subscription-write limit", rate, "subs/s", WRITE_LIMIT_PER_SECOND, "subs/s",
               ratio(rate, WRITE_LIMIT_PER_SECOND), ">= 0.90x",
               note="baseline: Graph's ~1,000 subscription writes per tenant per 20 s"),
        Figure(f"connect, {tenants} tenants vs one", many_rate, "rooms/s", rate, "rooms/s", ratio(many_rate, rate),
               f"grows with tenants ({bench_cores()} cores)",
               note=f"{many_connected:,} of {tenants * per_tenant:,} connected in {many_seconds:.0f} s "
                    f"({many_runs} timer runs), {per_tenant:,} calendars per tenant, all tenants queued at once; "
                    f"{many_load}"),
    ]


def bench_cores() -> int:
    return os.cpu_count() or 1


def _early_requests(log: list[dict[str, Any]]) -> tuple[int, int]:
    """(retries sent before their Retry-After, requests to the tenant arriving inside a Retry-After window).

    From the log's arrival stamps (CLOCK_MONOTONIC, shared with this machine). The first is the
    rule Graph states: the same resource (method and path) again before the Retry-After it was
    given. POST /subscriptions has one path for every room, so its retries are told apart only by
    the second number, which counts every stand-alone request to the tenant that arrived after a
    stand-alone 429 and before its Retry-After: it includes requests already on their way when
    the 429 was answered (other threads' sends, spread over ~100 ms by a busy 2-core machine), so
    it is context, not a violation count. A 429 inside a `$batch` reaches the client only with the
    whole batch, so it is held to the first rule only."""
    resource_until: dict[tuple[str, str], float] = {}
    tenant_until = 0.0
    retried_early = in_window = 0
    for entry in sorted(log, key=lambda e: e["seq"]):
        key = (entry["method"], entry["path"].lower())
        arrived = entry["monotonic"]
        if key != ("POST", "/v1.0/subscriptions") and arrived < resource_until.get(key, 0.0) - CLOCK_TOLERANCE:
            retried_early += 1
        if entry["kind"] == "graph" and arrived < tenant_until - CLOCK_TOLERANCE:
            in_window += 1
        if entry.get("status") == 429:
            until = arrived + float(entry.get("retry_after") or 0)
            resource_until[key] = max(resource_until.get(key, 0.0), until)
            if entry["kind"] == "graph":
                tenant_until = max(tenant_until, until)
    return retried_early, in_window


def connect_throttled(bench: Bench, calendars: int) -> list[Figure]:
    account = _prepare(bench, calendars, throttle_rate=0.1, retry_after_seconds=1)
    wait_for_quiet(bench)
    # The connector's requests only: not consent's readiness check before, nor the delta reads of the
    # first rounds the run asks for when the tenant's rooms are connected.
    since = max((e["seq"] for e in bench.sim_requests(account["tenant_id"])), default=0)
    seconds, connected, runs = _drive(bench, [account], calendars, timeout=max(300.0, calendars * 0.5))
    log = [e for e in bench.sim_requests(account["tenant_id"], since) if e.get("kind") in ("graph", "graph-batch-item")
           and "/calendarview" not in e["path"].lower()]
    _retire(bench, [account])
    throttled = sum(1 for e in log if e.get("status") == 429)
    retried_early, in_window = _early_requests(log)
    listings = sum(1 for e in log if e["method"] == "GET" and e["path"].lower().endswith("/subscriptions"))
    minimum = REQUESTS_PER_ROOM * calendars + math.ceil(calendars / ROOMS_PER_BATCH) + 1
    return [
        Figure("throttled: calendars connected", connected, "rooms", calendars, "rooms", ratio(connected, calendars),
               "= 1.00x", note=f"{calendars:,} queued, m365sim answering 10% of Graph requests 429 + Retry-After: 1 s; "
                               f"{seconds:.0f} s, {runs} timer runs"),
        Figure("throttled: retried before Retry-After", retried_early, "requests", throttled, "429s", None, "0",
               note="from m365sim's request log: the same resource (method + path) requested again before the "
                    f"Retry-After it was answered with; {in_window} stand-alone requests arrived inside some "
                    "Retry-After window of the tenant (incl. ones in flight when the 429 was answered)"),
        Figure("throttled: requests vs minimum", len(log), "requests", minimum, "requests", ratio(len(log), minimum),
               "<= 1.2x",
               note=f"minimum: {REQUESTS_PER_ROOM} per room (3 reads in a $batch + 1 subscription), a $batch "
                    f"envelope per {ROOMS_PER_BATCH} rooms and one subscription listing; counted: every Graph "
                    f"request and $batch item in the log ({listings} subscription listings, retries included)"),
    ]
