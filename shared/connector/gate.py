"""The tenant's gate: every Graph request the connector sends to one tenant is admitted here.

Owns Graph's limits as the connector keeps them: the tenant's `Retry-After` (shared by all
threads of the process: after a 429 nothing leaves for that tenant until it has passed), at
most 4 requests in flight per mailbox, and a sliding window of subscription writes under
Graph's budget. It never sends a request before a `Retry-After` it was given has passed and
never waits past the run's deadline: what cannot wait becomes `Deferred`.
https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from shared.connector.work import RunCounts
from shared.graph import GraphError
from shared.models import utc_now

T = TypeVar("T")

# Graph: 4 concurrent requests per app per mailbox; ~1,000 subscription writes per app
# per tenant per 20 s (later versions of the page say 500: Graph's 429 has the last word).
MAX_CONCURRENT_PER_MAILBOX = 4
SUBSCRIPTION_WRITES_PER_WINDOW = 1000
SUBSCRIPTION_WRITE_WINDOW_SECONDS = 20.0
# Inside a run we wait out a Retry-After up to this long; longer ones become a scheduled retry.
MAX_WAIT_IN_RUN_SECONDS = 30.0
MAX_TRIES_PER_CALL = 3


class Deferred(Exception):  # noqa: N818 - a signal, not an error
    """The tenant asked us to wait longer than this run may: retry at `retry_at`."""

    def __init__(self, retry_at: datetime, reason: str) -> None:
        super().__init__(reason)
        self.retry_at = retry_at
        self.reason = reason


class TenantGate:
    """Every Graph call of the connector to one tenant goes through here.

    Keeps the tenant's `Retry-After` (shared by all threads of the process: after a 429
    no request leaves for that tenant until it has passed), at most 4 requests in flight
    per mailbox, and a sliding window of subscription writes under Graph's limit.

    A request is admitted only when all three hold at once: the Retry-After is checked
    again after the mailbox and write slots are taken, because a thread may wait for those
    while another thread's request is answered 429. No wait passes the run's deadline."""

    def __init__(self, write_limit: int = SUBSCRIPTION_WRITES_PER_WINDOW,
                 write_window_seconds: float = SUBSCRIPTION_WRITE_WINDOW_SECONDS) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._blocked_until = 0.0  # time.monotonic()
        # When each write was answered: it reached Graph before that, so a window counted
        # from here never undercounts what Graph has seen. Writes on their way count too.
        self._writes: deque[float] = deque()
        self._writes_in_flight = 0
        self._write_limit = write_limit
        self._write_window = write_window_seconds
        self._mailboxes: dict[str, threading.BoundedSemaphore] = {}

    def block_for(self, seconds: float) -> None:
        with self._lock:
            self._blocked_until = max(self._blocked_until, time.monotonic() + seconds)

    def blocked_for(self) -> float:
        """Seconds until the tenant's Retry-After has passed (0 when it has)."""
        with self._lock:
            return max(0.0, self._blocked_until - time.monotonic())

    def _mailbox(self, key: str) -> threading.BoundedSemaphore:
        with self._lock:
            return self._mailboxes.setdefault(key.lower(), threading.BoundedSemaphore(MAX_CONCURRENT_PER_MAILBOX))

    def _wait_open(self, deadline: float, reason: str) -> None:
        while True:
            wait = self.blocked_for()
            if wait <= 0:
                return
            if wait > MAX_WAIT_IN_RUN_SECONDS or time.monotonic() + wait > deadline:
                raise Deferred(utc_now() + timedelta(seconds=wait), reason)
            time.sleep(wait)

    def _take_write_slot(self, deadline: float) -> None:
        with self._changed:
            while True:
                now = time.monotonic()
                while self._writes and self._writes[0] <= now - self._write_window:
                    self._writes.popleft()
                if len(self._writes) + self._writes_in_flight < self._write_limit:
                    self._writes_in_flight += 1
                    return
                # Every slot is taken: the oldest answered write leaves the window first; if
                # all are still on their way, one of them being answered is the next chance.
                if self._writes:
                    wait = self._writes[0] + self._write_window - now
                    if now + wait > deadline:
                        raise Deferred(utc_now() + timedelta(seconds=wait), "subscription write limit reached")
                else:
                    wait = deadline - now
                    if wait <= 0:
                        raise Deferred(utc_now() + timedelta(seconds=self._write_window),
                                       "subscription write limit reached")
                self._changed.wait(wait)

    def _end_write(self, sent: bool) -> None:
        with self._changed:
            self._writes_in_flight -= 1
            if sent:
                self._writes.append(time.monotonic())
            self._changed.notify_all()

    def _admit(self, deadline: float, write: bool, semaphore: threading.BoundedSemaphore | None) -> None:
        """Wait until this request may leave: Retry-After passed, a write slot and a mailbox
        slot held, and the Retry-After still passed once both are held."""
        while True:
            self._wait_open(deadline, "throttled by Microsoft Graph")
            if write:
                self._take_write_slot(deadline)
            if semaphore is not None and not semaphore.acquire(timeout=max(0.0, deadline - time.monotonic())):
                if write:
                    self._end_write(sent=False)
                raise Deferred(utc_now() + timedelta(seconds=1), "the mailbox is busy with other requests")
            with self._lock:
                if self._blocked_until <= time.monotonic():
                    return
            # A 429 arrived while this thread waited for its slots: give them back and wait it out.
            if semaphore is not None:
                semaphore.release()
            if write:
                self._end_write(sent=False)

    def call(self, send: Callable[[], T], *, counts: RunCounts, deadline: float, mailbox: str | None = None,
             write: bool = False, on_unauthorized: Callable[[], None] | None = None) -> T:
        """Send one request, waiting out throttling within the run's budget; raise what is left."""
        refreshed = False
        semaphore = self._mailbox(mailbox) if mailbox else None
        for attempt in range(1, MAX_TRIES_PER_CALL + 1):
            self._admit(deadline, write, semaphore)
            try:
                return send()
            except GraphError as error:
                if error.status == 401 and not refreshed and on_unauthorized is not None:
                    # A cached token issued before consent was revoked: get a fresh one once.
                    refreshed = True
                    on_unauthorized()
                    continue
                if not error.is_transient:
                    raise
                if error.status == 429:
                    counts.add("throttled")
                delay = error.retry_after if error.retry_after is not None else float(2 ** attempt)
                self.block_for(delay)
                if attempt == MAX_TRIES_PER_CALL:
                    raise
            finally:
                if semaphore is not None:
                    semaphore.release()
                if write:
                    self._end_write(sent=True)
        raise AssertionError("unreachable")  # pragma: no cover
