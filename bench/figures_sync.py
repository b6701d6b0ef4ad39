"""Sync figures: how soon a booking made in Outlook is in the bookings API, and how fast a first
full sync of many rooms runs, each against the bare Graph work it wraps, measured in the same run.

Owns the sync workload. Rooms are connected through the connector and linked to spaces through
the API (`bench.sync_rooms`); m365sim answers Graph after 50 ms and enforces Graph's limits.

- Latency: bookings are made through m365sim's control API ("someone booked this in Outlook")
  at a fixed rate, round-robin over the rooms; the sim notifies devhost's webhook, which queues
  a message that `sync_changes` turns into a delta round. A booking is in the bookings API from
  the moment its Bookings row is written (the API reads that table, no cache), so each one's
  latency runs from the sim's 201 to the row's `Timestamp`; a sample is also polled through the
  space's bookings API, and at the end every space's bookings are read through the API. The
  baseline is one bare incremental round (`calendarView/delta` from a stored deltaLink after one
  new booking) made from here with the product's Graph client, storing nothing.
- Initial sync: bookings seeded with the sim's bulk call (no notifications), then a full round of
  every room asked for the way the product asks (`BookingSync.request_account_resync`), timed
  until every room's sync state shows it. The baseline reads the same full rounds from here with
  the same concurrency devhost runs `sync_changes` with, storing nothing.

It never asserts a timing.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bench.report import ROOT, Figure, ratio
from bench.support import Bench, BenchError, Load, percentile
from bench.sync_rooms import (
    LATENCY_MS,
    DevhostLog,
    Rooms,
    booking_rows,
    connected_rooms,
    graph_time,
    tomorrow,
    wait_for_states,
)
from devhost.functions import read_host_json
from devhost.queueconfig import QueueOptions
from shared.bookings import sync_window
from shared.context import SYNC_MAX_WAIT_SECONDS, AppContext
from shared.graph.events import delta_pages
from shared.models import parse_iso, utc_now
from shared.settings import Settings

LATENCY_FIGURES = ["booking-to-API latency p95", "bookings missing after settle"]
INITIAL_FIGURE = "initial sync vs plain delta reads"
SYNC_FIGURES = [*LATENCY_FIGURES, INITIAL_FIGURE]
BOOKERS = 4
# One booking in SAMPLE_EVERY is also watched through the space's bookings API, every POLL_SECONDS.
SAMPLE_EVERY = 10
POLL_SECONDS = 0.1
POLLERS = 3
SETTLE_SECONDS = 60.0
STATE_POLL_SECONDS = 0.5


@dataclass
class Made:
    """One booking made in the sim: where, its slot, the event id, when the sim answered (epoch s)."""

    email: str
    space_id: str
    start: datetime
    end: datetime
    event_id: str
    answered: float
    sampled: bool = False
    api_seen: float | None = None  # when the space API first listed it (sampled bookings only)
    api_missed: float | None = None  # the last API answer before that which did not


def sync(bench: Bench, sizes: dict[str, int]) -> list[Figure]:
    context = AppContext.build(Settings.from_environment(bench.stack.env))
    figures: list[Figure] = []
    for names, measure in ((LATENCY_FIGURES, lambda: booking_latency(
            bench, context, sizes["sync_latency_rooms"], sizes["sync_booking_rate"], sizes["sync_booking_seconds"],
            sizes["sync_bare_rounds"])),
                           ([INITIAL_FIGURE], lambda: [initial_sync(
                               bench, context, sizes["sync_initial_rooms"], sizes["sync_bookings_per_room"])])):
        try:
            figures += measure()
        except Exception as error:  # noqa: BLE001 - one figure's failure must not hide the other
            traceback.print_exc()
            figures += [Figure.failed(name, "", f"{type(error).__name__}: {error}") for name in names]
    return figures


# --- booking-to-API latency -------------------------------------------------------------------

def booking_latency(bench: Bench, context: AppContext, room_count: int, rate: int, seconds: int,
                    bare_rounds: int) -> list[Figure]:
    rooms = connected_rooms(bench, room_count, with_spaces=True)
    bare = _bare_rounds(bench, context, bare_rounds)
    bare_p50, bare_p95 = percentile(bare, 0.5) * 1000, percentile(bare, 0.95) * 1000

    total = rate * seconds
    log, load = DevhostLog(bench.stack.devhost_log), Load(bench.stack)
    made, pollers = _make_bookings(bench, rooms, total, rate)
    settle_started = time.perf_counter()
    rows = _settle(bench, rooms, made, time.monotonic() + SETTLE_SECONDS)
    settled = time.perf_counter() - settle_started
    pollers.shutdown(wait=True)
    cpu, sync_lines = load.text(total, "booking"), log.text()

    written = {(email, booking_id): stamp for email, booking_id, stamp in rows}
    latencies = [(written[(m.email, m.event_id)] - m.answered) * 1000 for m in made if (m.email, m.event_id) in written]
    sampled = [m for m in made if m.sampled]
    api_latencies = [(m.api_seen - m.answered) * 1000 for m in sampled if m.api_seen is not None]
    gaps = [(m.api_seen - m.api_missed) * 1000 for m in sampled if m.api_seen is not None and m.api_missed]
    after_row = [(m.api_seen - written[(m.email, m.event_id)]) * 1000 for m in sampled
                 if m.api_seen is not None and (m.email, m.event_id) in written]
    missing, duplicates, unexpected = _read_back(bench, rooms, made)
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    span = made[-1].answered - made[0].answered if len(made) > 1 else float("nan")
    done = (f"{room_count:,} connected rooms each linked to a space; {total:,} bookings made through m365sim's "
            f"control API at {rate}/s ({(len(made) - 1) / span:.1f}/s achieved, {BOOKERS} threads), round-robin "
            f"over the rooms; m365sim latency {LATENCY_MS} ms, limits enforced")
    return [
        Figure("booking-to-API latency p95", p95, "ms", bare_p95, "ms", ratio(p95, bare_p95), "<= 5x",
               note=f"{done}. Latency: from the sim's 201 (bench clock) to the Timestamp of the booking's row in "
                    f"Bookings (Azurite's clock, same machine, 1 ms; when the write that stored it began: the "
                    f"bookings API reads that table, no cache): p50 {p50:.0f} ms, p95 {p95:.0f} ms, max "
                    f"{max(latencies, default=float('nan')):.0f} ms over {len(latencies):,} bookings. Through the "
                    f"API: 1 in {SAMPLE_EVERY} polled on GET /api/spaces/{{id}}/bookings every "
                    f"{POLL_SECONDS * 1000:.0f} ms ({POLLERS} threads): listed after p50 "
                    f"{percentile(api_latencies, 0.5):.0f} ms, p95 {percentile(api_latencies, 0.95):.0f} ms "
                    f"({len(api_latencies)} of {len(sampled)}), p95 {percentile(after_row, 0.95):.0f} ms after "
                    f"the row's Timestamp; resolution p95 {percentile(gaps, 0.95):.0f} ms (last answer without it "
                    f"to the first with it). Baseline: {len(bare)} bare incremental delta rounds of one room (one "
                    f"new booking each) from the bench process with the product's Graph client, p50 "
                    f"{bare_p50:.0f} ms, p95 {bare_p95:.0f} ms; ratio of p95s. {sync_lines}; {cpu}"),
        Figure("bookings missing after settle", missing, "bookings", total, "made", None, "0",
               note=f"{settled:.1f} s after the last booking all rows were written (waited up to "
                    f"{SETTLE_SECONDS:.0f} s); then each space's bookings read through the space API: {missing} "
                    f"missing, {duplicates} listed more than once, {unexpected} not made by the bench"),
    ]


def _bare_rounds(bench: Bench, context: AppContext, samples: int) -> list[float]:
    """Seconds of each bare incremental round of one room: one booking made (not timed), then the
    round's requests from the stored deltaLink, through the product's Graph client."""
    tenant = bench.new_tenant(1, consented=True)  # no subscription: these bookings notify nobody
    bench.set_knobs(tenant["id"], latency_ms=LATENCY_MS, enforce_limits=True)
    email = f"room-00000@{tenant['domain']}"
    mailbox = context.graph.get(tenant["id"], f"users/{email}", {"$select": "id"})["id"]
    window = sync_window(utc_now(), context.settings.sync_days_back, context.settings.sync_days_ahead)
    pages = list(delta_pages(context.graph, tenant["id"], mailbox, window=window,
                             max_wait_seconds=SYNC_MAX_WAIT_SECONDS))
    link = pages[-1].delta_link
    base = tomorrow()
    seconds = []
    for position in range(samples + 3):  # the first three warm the connection pool up, untimed
        start = base + timedelta(minutes=30 * position)
        event = bench.sim_call("POST", f"/_sim/tenants/{tenant['id']}/mailboxes/{email}/events",
                               json={"subject": f"bare {position}", "start": graph_time(start),
                                     "end": graph_time(start + timedelta(minutes=30))})
        started = time.perf_counter()
        pages = list(delta_pages(context.graph, tenant["id"], mailbox, link=link,
                                 max_wait_seconds=SYNC_MAX_WAIT_SECONDS))
        elapsed = time.perf_counter() - started
        if not any(item["id"] == event["id"] for page in pages for item in page.events):
            raise BenchError("a bare delta round did not return the booking made before it")
        link = pages[-1].delta_link or link
        if position >= 3:
            seconds.append(elapsed)
    bench.sim_call("POST", f"/_sim/tenants/{tenant['id']}/consent", json={"granted": False})
    return seconds


def _make_bookings(bench: Bench, rooms: Rooms, total: int, rate: float) -> tuple[list[Made], ThreadPoolExecutor]:
    """`total` bookings at `rate` per second, booking i in room i mod rooms; each sampled one is
    handed to the API pollers (still running when this returns)."""
    base = tomorrow()
    made: list[Made | None] = [None] * total
    pollers = ThreadPoolExecutor(max_workers=POLLERS, thread_name_prefix="api-poll")
    positions = iter(range(total))
    lock = threading.Lock()
    started = time.monotonic()

    def book() -> None:
        session = bench.sim  # requests.Session is safe to share for plain requests
        while True:
            with lock:
                position = next(positions, None)
            if position is None:
                return
            delay = started + position / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            room = position % len(rooms.emails)
            start = base + timedelta(hours=2 * (position // len(rooms.emails)))
            response = session.post(
                f"{bench.stack.sim_url}/_sim/tenants/{rooms.tenant_id}/mailboxes/{rooms.emails[room]}/events",
                json={"subject": f"bench {position}", "start": graph_time(start),
                      "end": graph_time(start + timedelta(hours=1))}, timeout=60)
            answered = time.time()
            if response.status_code != 201:
                raise BenchError(f"booking in the sim answered {response.status_code}: {response.text[:200]}")
            booking = Made(rooms.emails[room], rooms.space_ids[room], start, start + timedelta(hours=1),
                           response.json()["id"], answered, sampled=position % SAMPLE_EVERY == 0)
            made[position] = booking
            if booking.sampled:
                pollers.submit(_watch, bench, booking, time.monotonic() + SETTLE_SECONDS)

    with ThreadPoolExecutor(max_workers=BOOKERS, thread_name_prefix="book") as bookers:
        for future in [bookers.submit(book) for _ in range(BOOKERS)]:
            future.result()
    return [booking for booking in made if booking is not None], pollers


def _watch(bench: Bench, booking: Made, deadline: float) -> None:
    """Poll the space's bookings API (the booking's own hour) until it lists the booking."""
    params = {"start": booking.start.isoformat(), "end": booking.end.isoformat()}
    while time.monotonic() < deadline:
        sent = time.monotonic()
        response = bench.admin.get(f"/api/spaces/{booking.space_id}/bookings", params=params)
        answered = time.time()
        if response.status_code != 200:
            raise BenchError(f"the space's bookings answered {response.status_code}: {response.text[:200]}")
        if any(item["id"] == booking.event_id for item in response.json()["items"]):
            booking.api_seen = answered
            return
        booking.api_missed = answered
        time.sleep(max(0.0, sent + POLL_SECONDS - time.monotonic()))


def _settle(bench: Bench, rooms: Rooms, made: list[Made], deadline: float) -> list[tuple[str, str, float]]:
    """The account's Bookings rows once every booking made has one (or at the deadline)."""
    wanted = {(m.email, m.event_id) for m in made}
    while True:
        rows = booking_rows(bench, rooms.account_id)
        if wanted <= {(email, booking_id) for email, booking_id, _ in rows} or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def _read_back(bench: Bench, rooms: Rooms, made: list[Made]) -> tuple[int, int, int]:
    """(missing, listed more than once, not made here): every space's bookings through the API."""
    start = min(m.start for m in made)
    end = max(m.end for m in made)
    params = {"start": start.isoformat(), "end": end.isoformat()}

    def listed(space_id: str) -> list[str]:
        response = bench.admin.get(f"/api/spaces/{space_id}/bookings", params=params)
        if response.status_code != 200:
            raise BenchError(f"the space's bookings answered {response.status_code}: {response.text[:200]}")
        return [f"{space_id}/{item['id']}" for item in response.json()["items"]]

    with ThreadPoolExecutor(max_workers=4) as pool:
        seen = Counter(key for keys in pool.map(listed, rooms.space_ids) for key in keys)
    expected = {f"{m.space_id}/{m.event_id}" for m in made}
    return (sum(1 for key in expected if key not in seen), sum(1 for count in seen.values() if count > 1),
            sum(1 for key in seen if key not in expected))


# --- initial sync -----------------------------------------------------------------------------

def initial_sync(bench: Bench, context: AppContext, room_count: int, per_room: int) -> Figure:
    rooms = connected_rooms(bench, room_count, with_spaces=False)
    _seed(bench, rooms, per_room)
    mailboxes = [entity.get("mailbox_id") or entity["RowKey"] for entity in bench.calendars.query_all(
        "PartitionKey eq @a", parameters={"a": rooms.account_id}, select=["RowKey", "mailbox_id"])]
    window = sync_window(utc_now(), context.settings.sync_days_back, context.settings.sync_days_ahead)
    options = QueueOptions.from_host_json(read_host_json(ROOT).queues)

    def read_round(mailbox: str) -> int:
        return sum(len(page.events) for page in delta_pages(context.graph, rooms.tenant_id, mailbox, window=window,
                                                            max_wait_seconds=SYNC_MAX_WAIT_SECONDS))

    plain_started = time.perf_counter()
    events_read = sum(like_the_listener(read_round, mailboxes, options.batch_size, options.new_batch_threshold))
    plain_seconds = time.perf_counter() - plain_started

    log, load = DevhostLog(bench.stack.devhost_log), Load(bench.stack)
    running: list[int] = []
    asked_at = utc_now()
    started = time.perf_counter()
    context.sync.request_account_resync(rooms.account_id, "bench: initial sync")

    def finished(state: Any) -> bool:
        begun = parse_iso(state.last_full_at or None)
        return (begun is not None and begun > asked_at and state.bookings == per_room
                and not (state.lease is not None and state.lease.is_live()))

    wait_for_states(bench, rooms, finished, timeout=max(300.0, room_count * 1.0), what="the initial sync",
                    interval=STATE_POLL_SECONDS, seen=running)
    seconds = time.perf_counter() - started
    cpu, sync_lines = load.text(room_count, "room"), log.text()
    stored = len(booking_rows(bench, rooms.account_id))
    rate, plain_rate = room_count / seconds, room_count / plain_seconds
    most = options.batch_size + options.new_batch_threshold
    return Figure(
        INITIAL_FIGURE, rate, "rooms/s", plain_rate, "rooms/s", ratio(rate, plain_rate), ">= 0.70x",
        note=f"{room_count:,} connected rooms x {per_room} bookings seeded with m365sim's bulk call (no "
             f"notifications), latency {LATENCY_MS} ms; BookingSync.request_account_resync from the bench process "
             f"(one resync message per room on calendar-changes), timed until every room's sync state shows a "
             f"full round begun after the request with {per_room} bookings: {seconds:.1f} s (sync states read "
             f"every {STATE_POLL_SECONDS} s); Bookings rows of the account then: {stored:,} of "
             f"{room_count * per_room:,}. Rounds running (live leases) per read: mean "
             f"{sum(running) / max(1, len(running)):.1f}, max {max(running, default=0)}. Baseline: the same full "
             f"rounds (all pages, maxpagesize 200) read from the bench process with the product's Graph client by "
             f"a loop that keeps devhost's queue concurrency for sync_changes (host.json: {options.batch_size} "
             f"fetched once <= {options.new_batch_threshold} run, so <= {most} at once) and stores nothing: "
             f"{plain_seconds:.1f} s, {events_read:,} events. {sync_lines}; {cpu}")


def _seed(bench: Bench, rooms: Rooms, per_room: int, rooms_per_call: int = 100) -> None:
    base = tomorrow()
    events = [{"subject": f"seeded {k}", "start": graph_time(base + timedelta(hours=3 * k)),
               "end": graph_time(base + timedelta(hours=3 * k + 1))} for k in range(per_room)]
    for start in range(0, len(rooms.emails), rooms_per_call):
        chunk = rooms.emails[start:start + rooms_per_call]
        bench.sim_call("POST", f"/_sim/tenants/{rooms.tenant_id}/events/bulk",
                       json={"mailboxes": {email: events for email in chunk}, "notify": False})


def like_the_listener(work: Callable[[Any], Any], items: list[Any], batch_size: int, threshold: int) -> list[Any]:
    """`work(item)` for every item with the concurrency of devhost's queue listener
    (`devhost.queues.QueueListener`): `batch_size` more are started once no more than `threshold`
    are running. Results in order."""
    changed = threading.Condition()
    running = 0

    def finished(_: Any) -> None:
        nonlocal running
        with changed:
            running -= 1
            changed.notify_all()

    futures = []
    with ThreadPoolExecutor(max_workers=batch_size + threshold, thread_name_prefix="plain") as pool:
        for start in range(0, len(items), batch_size):
            with changed:
                while running > threshold:
                    changed.wait()
                batch = items[start:start + batch_size]
                running += len(batch)
            for item in batch:
                future = pool.submit(work, item)
                future.add_done_callback(finished)
                futures.append(future)
        return [future.result() for future in futures]
