"""The booking-to-API latency's floor: what syncing one booking takes when nothing is done but the
work the issue asks of every sync, on this machine, at the figure's rate.

Owns one measurement that the latency figure's note prints beside the product's. A fresh sim
tenant (no subscriptions, so its bookings notify nobody and devhost stays idle) gets the same
rooms; each room's deltaLink is stored first. Then bookings are made at the figure's rate as the
figure makes them, and after each sim 201 the bench puts one message on a scratch queue (what
the webhook does for a notification). As many processes as devhost has language workers take
those messages as devhost's listener does (the same batch and threshold, shared between them)
and for each: read the room's stored deltaLink, make the incremental round, store the new rows
and the new deltaLink in one entity-group transaction (one partition), write one change-feed
row, delete the message. Nothing else: no webhook request and no clientState check, no lease, no
calendar read, no check of stored rows, no host between the queue and the code. So no sync of
a booking on this machine is faster than this at this rate; the latency of each booking runs,
as in the figure, from the sim's 201 to the moment its row's write began.

It never asserts a timing.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bench.support import Bench, BenchError, Load, like_the_listener, percentile, tree_cpu_seconds
from bench.sync_rooms import LATENCY_MS, Booked, book_at_rate, plain_round
from devhost.queueconfig import QueueOptions
from shared.bookings import booking_from_event, sync_window
from shared.context import AppContext
from shared.models import utc_now
from shared.settings import Settings
from shared.storage import Table

STATE_ROW = "~state"  # the deltaLink's row, in the room's own partition of the floor's table
FEED_PARTITION = "~feed"
EMPTY_POLL_SECONDS = 0.05  # the floor polls an empty queue more often than the host's back-off does


@dataclass
class Floor:
    """The floor's latencies (ms, sim 201 to the row's write) and what it cost."""

    p50: float
    p95: float
    p95_by_sixth: list[float]  # in the order the bookings were made
    retried: int  # rounds that met a storage error and were taken again
    processes: int
    cpu: str  # the stack's processes and the machine (bench.support.Load)
    own_ms_per_booking: float  # CPU of the floor's processes


def mandated_latency(bench: Bench, context: AppContext, room_count: int, rate: int, seconds: int,
                     options: QueueOptions) -> Floor:
    """The mandated work alone at `rate` bookings/s over `room_count` rooms for `seconds`."""
    tenant = bench.new_tenant(room_count, consented=True)
    bench.set_knobs(tenant["id"], latency_ms=LATENCY_MS, enforce_limits=True)
    emails = [f"room-{index:05d}@{tenant['domain']}" for index in range(room_count)]
    name = f"benchfloor{uuid.uuid4().hex[:10]}"
    context.storage.tables.create_table_if_not_exists(name)
    queue = context.storage.queues.create_queue(name)
    table = Table(context.storage.tables.get_table_client(name))
    processes = bench.worker_processes
    spawn = multiprocessing.get_context("spawn")
    ready, stop, done = spawn.Barrier(processes + 1), spawn.Event(), spawn.Queue()
    workers = [spawn.Process(target=_consume, daemon=True,
                             args=(dict(bench.stack.env), tenant["id"], name, max(1, options.batch_size // processes),
                                   max(1, options.new_batch_threshold // processes), ready, stop, done))
               for _ in range(processes)]
    try:
        _first_rounds(context, table, tenant["id"], emails, options)
        for worker in workers:
            worker.start()
        try:
            ready.wait(timeout=120)
        except threading.BrokenBarrierError:
            raise BenchError(f"a process of the floor did not start: {done.get(timeout=5)}") from None
        load, floor_cpu = Load(bench.stack), sum(tree_cpu_seconds(worker.pid) for worker in workers)
        answered = _book(bench, tenant["id"], emails, rate * seconds, rate,
                         lambda message: queue.send_message(json.dumps(message)))
        cpu = load.text(rate * seconds, "booking")
        floor_cpu = sum(tree_cpu_seconds(worker.pid) for worker in workers) - floor_cpu
        stop.set()
        written: dict[tuple[str, str], float] = {}
        retried: list[str] = []
        for _ in workers:
            part = done.get(timeout=600)
            if isinstance(part, str):
                raise BenchError(f"the floor's consumer failed: {part}")
            written.update({(email, event_id): began for email, event_id, began in part[0]})
            retried += part[1]
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
        context.storage.tables.delete_table(name)
        context.storage.queues.delete_queue(name)
        bench.sim_call("POST", f"/_sim/tenants/{tenant['id']}/consent", json={"granted": False})
    if len(written) < len(answered):
        raise BenchError(f"the floor lost {len(answered) - len(written)} of {len(answered)} bookings")
    in_order = [(written[key] - at) * 1000 for at, key in sorted((at, key) for key, at in answered.items())]
    sixth = max(1, len(in_order) // 6)
    return Floor(p50=percentile(in_order, 0.5), p95=percentile(in_order, 0.95),
                 p95_by_sixth=[percentile(in_order[start:start + sixth], 0.95) for start in range(0, sixth * 6, sixth)],
                 retried=len(retried), processes=processes, cpu=cpu,
                 own_ms_per_booking=1000 * floor_cpu / max(1, len(in_order)))


def _first_rounds(context: AppContext, table: Table, tenant_id: str, emails: list[str],
                  options: QueueOptions) -> None:
    """Each room's first (full) round, its deltaLink stored: what the incremental rounds start from."""
    window = sync_window(utc_now(), context.settings.sync_days_back, context.settings.sync_days_ahead)

    def first(email: str) -> None:
        link = plain_round(context.graph, tenant_id, email, window=window)[1]
        table.upsert({"PartitionKey": _partition(tenant_id, email), "RowKey": STATE_ROW, "delta_link": link or ""})

    like_the_listener(first, emails, options.batch_size, options.new_batch_threshold)


def _book(bench: Bench, tenant_id: str, emails: list[str], total: int, rate: float,
          notify: Callable[[dict[str, Any]], None]) -> dict[tuple[str, str], float]:
    """`total` bookings at `rate`/s round-robin over the rooms, as the figure makes them; after each
    201, `notify` (the webhook's queue message). Returns when the sim answered each (epoch s)."""
    answered: dict[tuple[str, str], float] = {}
    lock = threading.Lock()

    def booked(one: Booked) -> None:
        with lock:
            answered[(one.email, one.event_id)] = one.answered
        notify({"email": one.email})

    book_at_rate(bench, tenant_id, emails, total, rate, "floor", booked)
    return answered


def _partition(tenant_id: str, email: str) -> str:
    return f"{tenant_id}|{email}"


def _consume(env: dict[str, str], tenant_id: str, name: str, batch_size: int, threshold: int,
             ready: Any, stop: Any, done: Any) -> None:
    """One process of the floor: take messages as devhost's listener does (a batch is fetched once no
    more than `threshold` run) until told to stop and the queue is empty; report what it wrote."""
    try:
        context = AppContext.build(Settings.from_environment(env))
        table = Table(context.storage.tables.get_table_client(name))
        queue = context.storage.queues.get_queue_client(name)
        written: list[tuple[str, str, float]] = []
        failures: list[str] = []
        changed = threading.Condition()
        running = 0

        def sync_one(message: Any) -> None:
            nonlocal running
            try:
                email = json.loads(message.content)["email"]
                partition = _partition(tenant_id, email)
                state = table.get(partition, STATE_ROW) or {}
                events, link = plain_round(context.graph, tenant_id, email, link=state.get("delta_link") or None)
                began = time.time()
                table.transact([("upsert", booking_from_event(event, tenant_id, email).to_entity()
                                 | {"PartitionKey": partition}) for event in events] +
                               [("upsert", {"PartitionKey": partition, "RowKey": STATE_ROW,
                                            "delta_link": link or ""})])
                table.upsert({"PartitionKey": FEED_PARTITION, "RowKey": uuid.uuid4().hex, "email": email,
                              "changes": len(events)})
                queue.delete_message(message)
                with changed:
                    written.extend((email, event["id"], began) for event in events)
            except Exception as error:  # noqa: BLE001 - the message comes back at once (the host waits longer)
                failures.append(f"{type(error).__name__}: {error}")
                with contextlib.suppress(Exception):  # then it comes back when its visibility ends
                    queue.update_message(message, visibility_timeout=0)
            finally:
                with changed:
                    running -= 1
                    changed.notify_all()

        ready.wait(timeout=120)
        with ThreadPoolExecutor(max_workers=batch_size + threshold, thread_name_prefix="floor") as pool:
            while True:
                with changed:
                    while running > threshold:
                        changed.wait()
                page = next(queue.receive_messages(messages_per_page=batch_size, visibility_timeout=60).by_page(),
                            iter(()))
                messages = list(page)
                if not messages:
                    if stop.is_set():
                        with changed:
                            if running == 0:
                                break
                    time.sleep(EMPTY_POLL_SECONDS)
                    continue
                with changed:
                    running += len(messages)
                for message in messages:
                    pool.submit(sync_one, message)
        done.put((written, failures))
    except Exception as error:  # noqa: BLE001 - reported to the parent, which raises it
        done.put(f"{type(error).__name__}: {error}")
        ready.abort()  # the parent, waiting for every process to start, learns it at once
