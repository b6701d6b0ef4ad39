"""Change notifications from real changes: every committed create, update or delete of an event
is posted to each live subscription on that mailbox whose changeType includes it, as Graph does
(learn.microsoft.com/graph/change-notifications-delivery-webhooks,
learn.microsoft.com/graph/outlook-change-notifications-overview).

Owns the delivery queue, a bounded pool of background workers, batching (notifications queued
together for one URL go in one POST, up to MAX_BATCH), retries with back-off when the endpoint
does not answer 2xx (at least once), the unreliability knobs (drop, duplicate, random delay so
order is not kept) and the delivery log. `publish` only queues: it must never make the request
that caused the change wait, never post while holding a lock, and never hold `SimState.lock`
beyond reading the subscriptions and knobs.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from m365sim import delivery
from m365sim.mailbox import Change
from m365sim.state import SimState, Tenant, User, format_graph_time

WORKERS = 8
# Posts in flight to one URL at once; what queues meanwhile goes together in the next post.
PER_URL_IN_FLIGHT = 4
MAX_BATCH = 100
# Graph retries for hours; the simulator tries four times over about 3.5 s.
RETRY_DELAYS_SECONDS = (0.5, 1.0, 2.0)
POST_TIMEOUT_SECONDS = 10.0
QUEUE_LIMIT = 200_000
LOG_LIMIT = 200_000


@dataclass
class _Pending:
    entry: dict[str, Any]
    payload: dict[str, Any]
    url: str
    generation: int


class Notifier:
    def __init__(self, state: SimState, ca_bundle: str | None = None, workers: int = WORKERS) -> None:
        self.state = state
        self.ca_bundle = ca_bundle
        self._workers_wanted = workers
        self._workers: list[threading.Thread] = []
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Pending]] = []  # not yet due: delayed or waiting to retry
        self._ready: collections.OrderedDict[str, collections.deque[_Pending]] = collections.OrderedDict()
        self._in_flight: dict[str, int] = {}
        self._queued = 0
        self._log: collections.deque[dict[str, Any]] = collections.deque(maxlen=LOG_LIMIT)
        self._seq = itertools.count(1)
        self._order = itertools.count()
        self._generation = 0

    # -- producers ------------------------------------------------------------------------------

    def publish(self, tenant: Tenant, user: User, changes: Iterable[Change]) -> None:
        """Queue a notification per change and matching subscription; returns at once."""
        subscriptions = self.state.subscriptions_of_mailbox(tenant.id, user.id)
        if not subscriptions:
            return
        with self.state.lock:
            knobs = tenant.knobs
            drop, duplicate, delay_ms = (knobs.notification_drop_rate, knobs.notification_duplicate_rate,
                                         knobs.notification_max_delay_ms)
        queued: list[tuple[dict[str, Any], dict[str, Any], str]] = []
        for change in changes:
            for sub in subscriptions:
                if change.change_type not in sub.change_type.split(","):
                    continue
                resource = f"Users/{user.id}/Events/{change.item_id}"
                payload = {
                    "subscriptionId": sub.id,
                    "subscriptionExpirationDateTime": format_graph_time(sub.expiration),
                    "changeType": change.change_type,
                    "resource": resource,
                    "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": resource,
                                     "@odata.etag": f'W/"{change.change_key}"', "id": change.item_id},
                    "clientState": sub.client_state,
                    "tenantId": sub.tenant_id,
                }
                entry = {"tenant": tenant.id, "subscriptionId": sub.id, "changeType": change.change_type,
                         "eventId": change.item_id, "url": sub.notification_url, "status": None, "attempts": 0,
                         "dropped": False, "duplicated": False}
                queued.append((entry, payload, sub.notification_url))
        with self._cond:
            for entry, payload, url in queued:
                copies = [entry]
                if duplicate and random.random() < duplicate:
                    copies.append({**entry, "duplicated": True})
                for copy in copies:
                    copy["seq"] = next(self._seq)
                    self._log.append(copy)
                    if (drop and random.random() < drop) or self._queued >= QUEUE_LIMIT:
                        copy["dropped"] = True
                        continue
                    delay = random.uniform(0, delay_ms / 1000) if delay_ms else 0.0
                    self._schedule(_Pending(copy, payload, url, self._generation), delay)
            self._start_workers()
            self._cond.notify_all()

    def log_since(self, since: int, tenant_id: str | None) -> list[dict[str, Any]]:
        with self._cond:
            found = []
            for entry in reversed(self._log):
                if entry["seq"] <= since:
                    break
                if tenant_id is None or entry["tenant"] == tenant_id:
                    found.append(dict(entry))
        found.reverse()
        return found

    def reset(self) -> None:
        """Forget queued deliveries and the log (`POST /_sim/reset`); posts in flight finish unlogged."""
        with self._cond:
            self._generation += 1
            self._heap.clear()
            self._ready.clear()
            self._queued = 0
            self._log.clear()

    # -- workers --------------------------------------------------------------------------------

    def _schedule(self, pending: _Pending, delay: float) -> None:
        self._queued += 1
        if delay <= 0:
            self._ready.setdefault(pending.url, collections.deque()).append(pending)
        else:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._order), pending))

    def _start_workers(self) -> None:
        # Started on first use, so building the app starts no thread.
        while len(self._workers) < self._workers_wanted:
            worker = threading.Thread(target=self._work, name=f"m365sim-notify-{len(self._workers)}", daemon=True)
            self._workers.append(worker)
            worker.start()

    def _take(self) -> tuple[str, list[_Pending]]:
        """Wait for a URL with due notifications and a free slot; take what is queued for it."""
        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    pending = heapq.heappop(self._heap)[2]
                    self._ready.setdefault(pending.url, collections.deque()).append(pending)
                for url, waiting in self._ready.items():
                    if self._in_flight.get(url, 0) < PER_URL_IN_FLIGHT:
                        batch = [waiting.popleft() for _ in range(min(MAX_BATCH, len(waiting)))]
                        if waiting:
                            self._ready.move_to_end(url)
                        else:
                            del self._ready[url]
                        self._in_flight[url] = self._in_flight.get(url, 0) + 1
                        self._queued -= len(batch)
                        return url, batch
                self._cond.wait(self._heap[0][0] - now if self._heap else None)

    def _work(self) -> None:
        while True:
            url, batch = self._take()
            try:
                result = delivery.post_json(url, {"value": [p.payload for p in batch]}, self.ca_bundle,
                                            timeout=POST_TIMEOUT_SECONDS)
            except Exception:  # noqa: BLE001 - a worker must outlive any one delivery; the log shows it failed
                result = {"status": None}
            status = result.get("status")
            delivered = isinstance(status, int) and 200 <= status < 300
            with self._cond:
                self._in_flight[url] -= 1
                if not self._in_flight[url]:
                    del self._in_flight[url]
                for pending in batch:
                    if pending.generation != self._generation:
                        continue
                    entry = pending.entry
                    entry["attempts"] += 1
                    entry["status"] = status
                    if not delivered and entry["attempts"] <= len(RETRY_DELAYS_SECONDS):
                        self._schedule(pending, RETRY_DELAYS_SECONDS[entry["attempts"] - 1])
                self._cond.notify_all()
