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
  new booking) made from here with the product's Graph client, storing nothing. The note adds
  the same bookings' latency when nothing but the work every sync must do is done, on the same
  machine at the same rate (`bench.sync_floor`): what no implementation here can beat.
- Initial sync: bookings seeded with the sim's bulk call (no notifications), then a full round of
  every room asked for the way the product asks (`BookingSync.request_account_resync`), timed
  until every room's sync state shows it. The baseline reads the same full rounds from here with
  the same concurrency devhost runs `sync_changes` with, storing nothing; the note adds what
  storing those rows alone takes on the same Azurite, and what reading and storing them does
  with nothing else (the work no sync can leave out, sharing the machine as the sync does).

It never asserts a timing.
"""

from __future__ import annotations

import math
import multiprocessing
import threading
import time
import traceback
import uuid
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bench.report import ROOT, Figure, ratio
from bench.support import Bench, BenchError, Load, like_the_listener, percentile
from bench.sync_floor import mandated_latency
from bench.sync_rooms import (
    LATENCY_MS,
    Booked,
    DevhostLog,
    Rooms,
    book_at_rate,
    booking_rows,
    connected_rooms,
    graph_time,
    plain_round,
    tomorrow,
    wait_for_quiet,
    wait_for_states,
)
from devhost.functions import read_host_json
from devhost.queueconfig import QueueOptions
from shared.bookings import SyncState, booking_from_event, sync_window
from shared.context import AppContext
from shared.models import parse_iso, utc_now
from shared.settings import Settings
from shared.storage import Table

LATENCY_FIGURES = ["booking-to-API latency p95", "bookings missing after settle"]
INITIAL_FIGURE = "initial sync vs plain delta reads"
SYNC_FIGURES = [*LATENCY_FIGURES, INITIAL_FIGURE]
# About one booking a second is also watched through its space's bookings API, by one thread
# sending at most one request per API_POLL_SECONDS (so <= 10 requests/s, ~0.1 core of devhost).
SAMPLED_PER_SECOND = 1
API_POLL_SECONDS = 0.1
SETTLE_SECONDS = 300.0
STALLED_SECONDS = 60.0
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
    """Both figures on one stack, the latency first (its tables are small); a failure of one is
    printed as FAILED and the other still runs."""
    context = AppContext.build(Settings.from_environment(bench.stack.env))
    measures: list[tuple[list[str], Callable[[], list[Figure]]]] = [
        (LATENCY_FIGURES, lambda: booking_latency(bench, context, sizes["sync_latency_rooms"],
                                                  sizes["sync_booking_rate"], sizes["sync_booking_seconds"],
                                                  sizes["sync_bare_rounds"])),
        ([INITIAL_FIGURE], lambda: [initial_sync(bench, context, sizes["sync_initial_rooms"],
                                                 sizes["sync_bookings_per_room"])]),
    ]
    figures: list[Figure] = []
    for names, measure in measures:
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
    wait_for_quiet(bench)
    bare = _bare_rounds(bench, context, bare_rounds)
    bare_p50, bare_p95 = percentile(bare, 0.5) * 1000, percentile(bare, 0.95) * 1000

    total = rate * seconds
    log, load = DevhostLog(bench.stack.devhost_log), Load(bench.stack)
    watcher = ApiWatcher(bench)
    made = _make_bookings(bench, rooms, total, rate, watcher, sample_every=max(1, rate // SAMPLED_PER_SECOND))
    settle_started = time.perf_counter()
    rows = _settle(bench, rooms, made, time.monotonic() + SETTLE_SECONDS)
    settled = time.perf_counter() - settle_started
    cpu, sync_lines = load.text(total, "booking"), log.text()
    watcher.stop(time.monotonic() + 30)
    deliveries = _deliveries(bench, rooms.tenant_id)

    written = {(email, booking_id): stamp for email, booking_id, stamp in rows}
    latency_of = {i: (written[(m.email, m.event_id)] - m.answered) * 1000 for i, m in enumerate(made)
                  if (m.email, m.event_id) in written}
    latencies = list(latency_of.values())
    sampled = [m for m in made if m.sampled]
    api_latencies = [(m.api_seen - m.answered) * 1000 for m in sampled if m.api_seen is not None]
    gaps = [(m.api_seen - m.api_missed) * 1000 for m in sampled if m.api_seen is not None and m.api_missed]
    after_row = [(m.api_seen - written[(m.email, m.event_id)]) * 1000 for m in sampled
                 if m.api_seen is not None and (m.email, m.event_id) in written]
    missing, duplicates, unexpected = _read_back(bench, rooms, made)
    floor = mandated_latency(bench, context, room_count, rate, seconds,
                             QueueOptions.from_host_json(read_host_json(ROOT).queues))
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    span = made[-1].answered - made[0].answered if len(made) > 1 else float("nan")
    workload = (f"{room_count:,} connected rooms, each linked to a space; {total:,} bookings made through m365sim's "
                f"control API at {rate}/s ({(len(made) - 1) / span:.1f}/s achieved), round-robin over the rooms; "
                f"m365sim latency {LATENCY_MS} ms, limits enforced")
    commit = (f"Latency = the sim's 201 (bench clock) to the Timestamp of the booking's Bookings row (Azurite's "
              f"clock, same machine, 1 ms: when the write that stored it began; the bookings API reads that table "
              f"with no cache): p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {max(latencies, default=math.nan):.0f} ms "
              f"over {len(latencies):,} bookings; p50 per sixth of the run, in order: {_over_time(made, latency_of)} "
              "ms")
    api = (f"Through the API: {len(sampled)} sampled bookings (~{SAMPLED_PER_SECOND}/s) polled on GET "
           f"/api/spaces/{{id}}/bookings by one thread, round-robin, <= 1 request per "
           f"{API_POLL_SECONDS * 1000:.0f} ms ({watcher.requests:,} requests): {len(api_latencies)} listed after "
           f"p50 {percentile(api_latencies, 0.5):.0f} ms, p95 {percentile(api_latencies, 0.95):.0f} ms; that is "
           f"p95 {percentile(after_row, 0.95):.0f} ms after the row's Timestamp, at a resolution (last answer "
           f"without it to the first with it) of p95 {percentile(gaps, 0.95):.0f} ms")
    baseline = (f"Baseline: {len(bare)} bare incremental delta rounds of one room, one new booking before each, "
                f"from the bench process with the product's Graph client: p50 {bare_p50:.0f} ms, p95 "
                f"{bare_p95:.0f} ms; ratio of the p95s")
    alone = (f"The mandated work alone (bench/sync_floor.py: the same bookings at the same rate in a tenant of as many "
             f"rooms that notifies nobody; after each 201 a message on a scratch queue; {floor.processes} processes "
             f"with the listener's concurrency each read the room's deltaLink, make the incremental round, store its "
             f"rows and the new link in one transaction, write one feed row, delete the message; no webhook, lease, "
             f"calendar read or check of stored rows): p50 {floor.p50:.0f} ms, p95 {floor.p95:.0f} ms "
             f"({ratio(floor.p95, bare_p95):.2f}x the bare round), p95 per sixth of the run, in order: "
             f"{', '.join(f'{value:.0f}' for value in floor.p95_by_sixth)} ms; {floor.retried} rounds taken again "
             f"after a storage error; its processes {floor.own_ms_per_booking:.1f} ms/booking, {floor.cpu}")
    settled_text = (f"every row was written {settled:.1f} s after the last booking" if len(latencies) == total else
                    f"{total - len(latencies)} rows still missing after waiting {settled:.0f} s")
    return [
        Figure("booking-to-API latency p95", p95, "ms", bare_p95, "ms", ratio(p95, bare_p95), "<= 5x",
               note=f"{workload}. {commit}. {api}. {baseline}. {sync_lines}; {deliveries}; {cpu}. {alone}"),
        Figure("bookings missing after settle", missing, "bookings", total, "made", None, "0",
               note=f"{settled_text}; then every space's bookings were read through the space API: {missing} "
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
    link = plain_round(context.graph, tenant["id"], mailbox, window=window)[1]
    base = tomorrow()
    seconds = []
    for position in range(samples + 3):  # the first three warm the connection pool up, untimed
        start = base + timedelta(minutes=30 * position)
        event = bench.sim_call("POST", f"/_sim/tenants/{tenant['id']}/mailboxes/{email}/events",
                               json={"subject": f"bare {position}", "start": graph_time(start),
                                     "end": graph_time(start + timedelta(minutes=30))})
        started = time.perf_counter()
        events, next_link = plain_round(context.graph, tenant["id"], mailbox, link=link)
        elapsed = time.perf_counter() - started
        if not any(item["id"] == event["id"] for item in events):
            raise BenchError("a bare delta round did not return the booking made before it")
        link = next_link or link
        if position >= 3:
            seconds.append(elapsed)
    bench.sim_call("POST", f"/_sim/tenants/{tenant['id']}/consent", json={"granted": False})
    return seconds


def _make_bookings(bench: Bench, rooms: Rooms, total: int, rate: float, watcher: ApiWatcher,
                   sample_every: int) -> list[Made]:
    """`total` bookings at `rate` per second, booking i in room i mod rooms, one in `sample_every`
    handed to the API watcher."""
    made: list[Made | None] = [None] * total
    space_of = dict(zip(rooms.emails, rooms.space_ids, strict=True))

    def booked(one: Booked) -> None:
        booking = Made(one.email, space_of[one.email], one.start, one.end, one.event_id, one.answered,
                       sampled=one.position % sample_every == 0)
        made[one.position] = booking
        if booking.sampled:
            watcher.add(booking)

    watcher.start()
    book_at_rate(bench, rooms.tenant_id, rooms.emails, total, rate, "bench", booked)
    return [booking for booking in made if booking is not None]


class ApiWatcher:
    """One thread polling the space bookings API for the sampled bookings not yet listed, round-robin,
    at most one request per API_POLL_SECONDS: a bounded load on devhost, whatever the latency."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.requests = 0
        self._pending: deque[Made] = deque()
        self._lock = threading.Lock()
        self._deadline: float | None = None
        self._thread = threading.Thread(target=self._run, name="api-watch", daemon=True)
        self._error: Exception | None = None

    def start(self) -> None:
        self._thread.start()

    def add(self, booking: Made) -> None:
        with self._lock:
            self._pending.append(booking)

    def stop(self, deadline: float) -> None:
        """Watch what is still pending until `deadline`, then stop."""
        self._deadline = deadline
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            while self._deadline is None or time.monotonic() < self._deadline:
                sent = time.monotonic()
                with self._lock:
                    booking = self._pending.popleft() if self._pending else None
                if booking is None:
                    if self._deadline is not None:
                        return
                elif not self._listed(booking):
                    with self._lock:
                        self._pending.append(booking)
                time.sleep(max(0.0, sent + API_POLL_SECONDS - time.monotonic()))
        except Exception as error:  # noqa: BLE001 - raised again by stop(), on the figure's thread
            self._error = error

    def _listed(self, booking: Made) -> bool:
        response = self.bench.admin.get(f"/api/spaces/{booking.space_id}/bookings",
                                        params={"start": booking.start.isoformat(), "end": booking.end.isoformat()})
        answered = time.time()
        self.requests += 1
        if response.status_code != 200:
            raise BenchError(f"the space's bookings answered {response.status_code}: {response.text[:200]}")
        if any(item["id"] == booking.event_id for item in response.json()["items"]):
            booking.api_seen = answered
            return True
        booking.api_missed = answered
        return False


def _settle(bench: Bench, rooms: Rooms, made: list[Made], deadline: float) -> list[tuple[str, str, float]]:
    """The account's Bookings rows once every booking made has one, or at the deadline, or once
    STALLED_SECONDS passed without a new one."""
    wanted = {(m.email, m.event_id) for m in made}
    found, progressed = -1, time.monotonic()
    while True:
        rows = booking_rows(bench, rooms.account_id)
        present = len(wanted & {(email, booking_id) for email, booking_id, _ in rows})
        if present > found:
            found, progressed = present, time.monotonic()
        if present == len(wanted) or time.monotonic() > min(deadline, progressed + STALLED_SECONDS):
            return rows
        time.sleep(1.0)


def _deliveries(bench: Bench, tenant_id: str) -> str:
    """What m365sim's delivery log says of the notifications to the tenant's subscriptions."""
    log = bench.sim_call("GET", "/_sim/notifications", params={"tenant": tenant_id})["value"]
    retried = sum(1 for entry in log if (entry.get("attempts") or 0) > 1)
    failed = sum(1 for entry in log if not (isinstance(entry.get("status"), int) and 200 <= entry["status"] < 300))
    return (f"m365sim: {len(log):,} notifications, {retried} delivered more than once (no 2xx in time), "
            f"{failed} never answered 2xx")


def _over_time(made: list[Made], latency_of: dict[int, float], parts: int = 6) -> str:
    """p50 latency of each successive part of the bookings, in the order they were made."""
    size = max(1, len(made) // parts)
    medians = [percentile([latency_of[i] for i in range(start, min(len(made), start + size)) if i in latency_of], 0.5)
               for start in range(0, len(made), size)]
    return ", ".join(f"{value:.0f}" for value in medians[:parts])


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
    drained = wait_for_quiet(bench)  # what the latency figure left, so these rooms connect on a quiet host
    rooms = connected_rooms(bench, room_count, with_spaces=False)
    _seed(bench, rooms, per_room)
    calendars = list(bench.calendars.query_all("PartitionKey eq @a", parameters={"a": rooms.account_id},
                                               select=["RowKey", "mailbox_id"]))
    mailboxes = [entity.get("mailbox_id") or entity["RowKey"] for entity in calendars]
    window = sync_window(utc_now(), context.settings.sync_days_back, context.settings.sync_days_ahead)
    options = QueueOptions.from_host_json(read_host_json(ROOT).queues)

    def read_round(mailbox: str) -> list[dict[str, Any]]:
        return plain_round(context.graph, rooms.tenant_id, mailbox, window=window)[0]

    plain_started = time.perf_counter()
    read = like_the_listener(read_round, mailboxes, options.batch_size, options.new_batch_threshold)
    plain_seconds = time.perf_counter() - plain_started
    events_read = sum(len(events) for events in read)
    wait_for_quiet(bench)

    log, load = DevhostLog(bench.stack.devhost_log), Load(bench.stack)
    running: list[int] = []
    asked_at = utc_now()
    started = time.perf_counter()
    context.sync.request_account_resync(rooms.account_id, "bench: initial sync")

    def finished(state: SyncState) -> bool:
        begun = parse_iso(state.last_full_at or None)
        return (begun is not None and begun > asked_at and state.bookings == per_room
                and not (state.lease is not None and state.lease.is_live()))

    wait_for_states(bench, rooms, finished, timeout=max(300.0, room_count * 1.0), what="the initial sync",
                    interval=STATE_POLL_SECONDS, seen=running)
    seconds = time.perf_counter() - started
    cpu, sync_lines = load.text(room_count, "room"), log.text()
    stored = len(booking_rows(bench, rooms.account_id))
    emails = [entity["RowKey"] for entity in calendars]
    alone = _store_alone(context, rooms.account_id, emails, read, options)
    both, processes = _read_and_store(bench, context, rooms, list(zip(mailboxes, emails, strict=True)), window, options)
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
             f"{plain_seconds:.1f} s, {events_read:,} events. Storing alone: the same {events_read:,} rows as the "
             f"rounds make them (one transaction per room, upserts), written from the bench process with that "
             f"concurrency into an empty table of the same Azurite, nothing else: {alone:.1f} s. Reading and storing: "
             f"each room's full round read and its rows stored as one transaction, nothing else (no lease, no sync "
             f"state, no check of stored rows, no change feed), by the same loop in {processes} processes (as many as "
             f"devhost's language workers; the concurrency shared between them), into another empty table: "
             f"{both:.1f} s, so no sync here that keeps one row per occurrence beats "
             f"{plain_seconds / max(both, plain_seconds):.2f}x. "
             f"{sync_lines}; {cpu}. Before the set-up, {drained:.0f} s waited for calendar-changes to drain")


def _store_alone(context: AppContext, account_id: str, emails: list[str], read: list[list[dict[str, Any]]],
                 options: QueueOptions) -> float:
    """Seconds to store the rows of every room's full round, and do nothing else: the part of the
    initial sync that its baseline leaves out and no implementation can."""
    rooms = [[booking_from_event(event, account_id, email).to_entity() for event in events]
             for email, events in zip(emails, read, strict=True)]
    name = f"benchalone{uuid.uuid4().hex[:10]}"
    table = Table(context.storage.tables.create_table_if_not_exists(name))
    try:
        started = time.perf_counter()
        like_the_listener(lambda rows: table.submit_in_batches([("upsert", row) for row in rows]), rooms,
                          options.batch_size, options.new_batch_threshold)
        return time.perf_counter() - started
    finally:
        context.storage.tables.delete_table(name)


def _read_and_store(bench: Bench, context: AppContext, rooms: Rooms, calendars: list[tuple[str, str]],
                    window: tuple[datetime, datetime], options: QueueOptions) -> tuple[float, int]:
    """Seconds to read every room's full round and store its rows, and do nothing else: the work
    no initial sync can leave out, sharing this machine as the sync does. In as many processes
    as devhost has language workers (one Python process would be bound by its own GIL, not by the
    machine), the listener's concurrency shared between them. Returns (seconds, processes)."""
    processes = bench.worker_processes
    spawn = multiprocessing.get_context("spawn")
    name = f"benchboth{uuid.uuid4().hex[:10]}"
    context.storage.tables.create_table_if_not_exists(name)
    ready, go, done = spawn.Barrier(processes + 1), spawn.Event(), spawn.Queue()
    parts = [calendars[index::processes] for index in range(processes)]
    workers = [spawn.Process(target=_read_and_store_part, daemon=True,
                               args=(dict(bench.stack.env), rooms.tenant_id, rooms.account_id, part, window, name,
                                     max(1, options.batch_size // processes),
                                     max(1, options.new_batch_threshold // processes), ready, go, done))
               for part in parts]
    try:
        for worker in workers:
            worker.start()
        ready.wait(timeout=120)
        started = time.perf_counter()
        go.set()
        failures = [done.get(timeout=600) for _ in workers]
        seconds = time.perf_counter() - started
        if any(failures):
            raise BenchError(f"reading and storing failed: {next(f for f in failures if f)}")
        return seconds, processes
    finally:
        for worker in workers:
            worker.join(timeout=30)
        context.storage.tables.delete_table(name)


def _read_and_store_part(env: dict[str, str], tenant_id: str, account_id: str, calendars: list[tuple[str, str]],
                         window: tuple[datetime, datetime], table_name: str, batch_size: int, threshold: int,
                         ready: Any, go: Any, done: Any) -> None:
    """One process of `_read_and_store`: its share of the rooms, once every process is ready."""
    try:
        context = AppContext.build(Settings.from_environment(env))
        table = Table(context.storage.tables.get_table_client(table_name))

        def read_and_store(calendar: tuple[str, str]) -> None:
            mailbox, email = calendar
            events = plain_round(context.graph, tenant_id, mailbox, window=window)[0]
            table.submit_in_batches([("upsert", booking_from_event(event, account_id, email).to_entity())
                                     for event in events])

        ready.wait(timeout=120)
        go.wait(timeout=120)
        like_the_listener(read_and_store, calendars, batch_size, threshold)
        done.put("")
    except Exception as error:  # noqa: BLE001 - reported to the parent, which raises it
        done.put(f"{type(error).__name__}: {error}")


def _seed(bench: Bench, rooms: Rooms, per_room: int, rooms_per_call: int = 100) -> None:
    base = tomorrow()
    events = [{"subject": f"seeded {k}", "start": graph_time(base + timedelta(hours=3 * k)),
               "end": graph_time(base + timedelta(hours=3 * k + 1))} for k in range(per_room)]
    for start in range(0, len(rooms.emails), rooms_per_call):
        chunk = rooms.emails[start:start + rooms_per_call]
        bench.sim_call("POST", f"/_sim/tenants/{rooms.tenant_id}/events/bulk",
                       json={"mailboxes": {email: events for email in chunk}, "notify": False})
