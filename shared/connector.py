"""The connector: connects queued calendars, renews subscriptions, retries failures that are due.

Owns one timer run: which calendars need work, claiming them, talking to Graph
within its limits, and the run records behind `GET /api/connector/status`.
Per tenant, several `$batch` look-ups and subscription writes are in flight at once
(bounded pools, a bounded number of claimed rooms), every request admitted by the
tenant's gate (Retry-After, 4 per mailbox, the subscription-write window).
It never sends a request to a tenant before a `Retry-After` it was given has
passed, never works past the run's time limit on new claims, and never
leaves a subscription in Graph that no calendar knows.

What makes each step restartable (STYLE: background work is restartable):
- a calendar is claimed with an ETag-guarded write that sets a lease
  (`claimed_until`, `claimed_by` in the entity); a lost race skips it, and a
  run killed midway leaves a lease that expires, after which it is claimable again.
  The rooms of one `$batch` look-up are claimed in one entity-group transaction and
  their outcomes saved in another; when one of them was written meanwhile, each is
  claimed (or re-read and saved) on its own instead;
- the subscription's nonce (hence its clientState) is saved with the claim,
  before the subscription is created, so the next run can recognise what a
  killed run created: it lists the app's subscriptions and adopts the one for
  the room whose clientState it derives, deleting any other;
- subscriptions Graph reports that no calendar knows are deleted.
https://learn.microsoft.com/graph/throttling, https://learn.microsoft.com/graph/json-batching
"""

from __future__ import annotations

import copy
import hmac
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote

from shared.account_service import AccountService
from shared.accounts import Account, AccountRepository
from shared.calendars import Calendar, CalendarRepository
from shared.errors import ConcurrencyConflict
from shared.graph import GraphClient, GraphError
from shared.identity import IdentityUnavailable, TokenProvider, TokenRefused
from shared.models import AccountStatus, CalendarStatus, iso, parse_iso, utc_now
from shared.ncrontab import Schedule
from shared.storage import Table
from shared.subscriptions import (
    RENEW_WITHIN,
    GraphSubscription,
    SubscriptionIndex,
    SubscriptionManager,
    client_state_for,
    client_state_hash,
    new_nonce,
    subscription_expiry,
)

log = logging.getLogger("rcc.connector")

T = TypeVar("T")

LEASE = timedelta(minutes=10)
# Graph: 4 concurrent requests per app per mailbox; ~1,000 subscription writes per app
# per tenant per 20 s. https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits
MAX_CONCURRENT_PER_MAILBOX = 4
SUBSCRIPTION_WRITES_PER_WINDOW = 1000
SUBSCRIPTION_WRITE_WINDOW_SECONDS = 20.0
# Per tenant: writers subscribe and renew, readers run the mailbox look-ups ($batch). Graph
# answers each request in tens of milliseconds or more, so one request at a time caps a tenant
# far below its subscription-write limit; these keep enough in flight to reach it.
WORKERS_PER_TENANT = 16
LOOKUPS_PER_TENANT = 10
# Rooms claimed and not yet finished, per tenant: claims run only as far ahead of the work as
# this, so leases stay short and little is still running when the time limit comes.
ROOMS_IN_FLIGHT = 120
CONCURRENT_TENANTS = 4
# A $batch holds at most 20 requests; each room needs three reads.
ROOMS_PER_BATCH = 6
# Inside a run we wait out a Retry-After up to this long; longer ones become a scheduled retry.
MAX_WAIT_IN_RUN_SECONDS = 30.0
MAX_TRIES_PER_CALL = 3
RETRY_BASE_SECONDS = 60
RETRY_MAX_SECONDS = 3600
RUN_PARTITION = "run"

LEASE_UNTIL = "claimed_until"
LEASE_OWNER = "claimed_by"
NONCE = "subscription_nonce"
REAUTHORIZE = "reauthorize_requested"


class Deferred(Exception):  # noqa: N818 - a signal, not an error
    """The tenant asked us to wait longer than this run may: retry at `retry_at`."""

    def __init__(self, retry_at: datetime, reason: str) -> None:
        super().__init__(reason)
        self.retry_at = retry_at
        self.reason = reason


class ConsentLost(Exception):  # noqa: N818
    """The tenant no longer lets the app in (token refused, or Graph refuses the token)."""


@dataclass
class Failure(Exception):  # noqa: N818
    kind: str  # consent | permission | mailbox | policy | transient
    reason: str
    retry_at: datetime | None = None


@dataclass
class RunCounts:
    claimed: int = 0
    connected: int = 0
    renewed: int = 0
    failed: int = 0
    throttled: int = 0
    left_for_next_run: int = 0
    orphans_deleted: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in ("claimed", "connected", "renewed", "failed", "throttled",
                                                       "left_for_next_run", "orphans_deleted")}


def retry_delay_seconds(attempts: int, retry_after: float | None = None) -> float:
    """Exponential backoff between runs (1, 2, 4 … 60 minutes), never before Retry-After."""
    backoff = min(RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1), RETRY_MAX_SECONDS)
    return max(float(backoff), retry_after or 0.0)


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


@dataclass
class TenantRun:
    """One account's share of a run."""

    account: Account
    run_id: str
    gate: TenantGate
    counts: RunCounts
    deadline: float
    listing: list[GraphSubscription] = field(default_factory=list)
    consent_lost: threading.Event = field(default_factory=threading.Event)

    @property
    def tenant_id(self) -> str:
        return self.account.tenant_id

    def out_of_time(self) -> bool:
        return time.monotonic() >= self.deadline


class RoomsInFlight:
    """Rooms one tenant's run has taken on and not finished yet, at most `limit`."""

    def __init__(self, limit: int) -> None:
        self._free = limit
        self._changed = threading.Condition()

    def take(self, rooms: int, work: TenantRun) -> bool:
        """Wait until `rooms` more fit; False when the run runs out of time (or loses consent) first."""
        with self._changed:
            while self._free < rooms:
                if work.out_of_time() or work.consent_lost.is_set():
                    return False
                self._changed.wait(min(1.0, max(0.0, work.deadline - time.monotonic())))
            if work.out_of_time() or work.consent_lost.is_set():
                return False
            self._free -= rooms
            return True

    def give(self, rooms: int = 1) -> None:
        with self._changed:
            self._free += rooms
            self._changed.notify_all()


@dataclass
class Mailbox:
    mailbox_id: str
    display_name: str | None


@dataclass
class Settled:
    """A room's outcome waiting to be saved: the change to its calendar, what to count once it
    is saved, and the subscription made for it (deleted if its calendar was removed meanwhile)."""

    calendar: Calendar
    change: Callable[[Calendar], None]
    count: str
    subscription: GraphSubscription | None = None


class ChunkSettlement:
    """The outcomes of the rooms claimed together; the room that comes in last gets them all,
    to save them together as they were claimed."""

    def __init__(self, rooms: int) -> None:
        self._waiting = rooms
        self._settled: list[Settled] = []
        self._lock = threading.Lock()

    def add(self, settled: Settled | None) -> list[Settled] | None:
        """Add one room's outcome (None: nothing to save, its lease will expire)."""
        with self._lock:
            if settled is not None:
                self._settled.append(settled)
            self._waiting -= 1
            return self._settled if self._waiting == 0 else None


class Connector:
    def __init__(
        self,
        *,
        calendars: CalendarRepository,
        accounts: AccountRepository,
        account_service: AccountService,
        tokens: TokenProvider,
        graph: GraphClient,
        subscriptions: SubscriptionManager,
        index: SubscriptionIndex,
        runs: Table,
        signing_key: bytes,
        schedule: Schedule,
        time_limit_seconds: int,
        workers_per_tenant: int = WORKERS_PER_TENANT,
        lookups_per_tenant: int = LOOKUPS_PER_TENANT,
        rooms_in_flight: int = ROOMS_IN_FLIGHT,
    ) -> None:
        self.calendars = calendars
        self.accounts = accounts
        self.account_service = account_service
        self.tokens = tokens
        self.graph = graph
        self.subscriptions = subscriptions
        self.index = index
        self.runs = runs
        self.signing_key = signing_key
        self.schedule = schedule
        self.time_limit_seconds = time_limit_seconds
        self.workers_per_tenant = workers_per_tenant
        self.lookups_per_tenant = lookups_per_tenant
        self.rooms_in_flight = max(rooms_in_flight, ROOMS_PER_BATCH)
        self._gates: dict[str, TenantGate] = {}
        self._gates_lock = threading.Lock()

    # --- the run ----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """One timer run over every verified account. Safe to overlap with another run."""
        started = utc_now()
        run_id = uuid.uuid4().hex[:16]
        deadline = time.monotonic() + self.time_limit_seconds
        counts = RunCounts()
        row_key = f"{10**13 - int(started.timestamp() * 1000):013d}-{run_id}"
        record = {"PartitionKey": RUN_PARTITION, "RowKey": row_key, "run_id": run_id, "started_at": iso(started),
                  "finished_at": ""}
        self.runs.upsert(record)
        accounts = [a for a in self.accounts.all() if a.status is AccountStatus.VERIFIED]
        with ThreadPoolExecutor(max_workers=max(1, min(CONCURRENT_TENANTS, len(accounts)))) as pool:
            futures = [pool.submit(self._run_account, account, run_id, counts, deadline) for account in accounts]
            for account, future in zip(accounts, futures, strict=True):
                try:
                    future.result()
                except Exception:  # noqa: BLE001 - one tenant's failure must not stop the others
                    log.exception("connector run %s failed for account %s", run_id, account.account_id)
        summary = {"started_at": iso(started), "finished_at": iso(utc_now()), **counts.as_dict()}
        self.runs.upsert({**record, **summary})
        log.info("connector run %s: %s", run_id, summary)
        return summary

    def status(self) -> dict[str, Any]:
        page = self.runs.query_page("PartitionKey eq @pk", parameters={"pk": RUN_PARTITION}, page_size=20)
        finished = [e for e in page.items if e.get("finished_at")]
        latest = (finished or page.items or [None])[0]
        last_run = None
        if latest is not None:
            last_run = {"started_at": latest.get("started_at"), "finished_at": latest.get("finished_at") or None,
                        **{name: int(latest.get(name) or 0) for name in ("claimed", "connected", "renewed", "failed",
                                                                          "throttled", "left_for_next_run")}}
        return {"last_run": last_run, "next_run_at": iso(self.schedule.next_after(utc_now()))}

    def gate(self, tenant_id: str) -> TenantGate:
        with self._gates_lock:
            return self._gates.setdefault(tenant_id, TenantGate())

    def _run_account(self, account: Account, run_id: str, counts: RunCounts, deadline: float) -> None:
        work = TenantRun(account, run_id, self.gate(account.tenant_id), counts, deadline)
        try:
            self.tokens.acquire(account.tenant_id)
        except TokenRefused as refused:
            if refused.consent_problem:
                self._consent_lost(work, refused.message)
            else:
                log.warning("token refused for account %s: %s", account.account_id, refused.message)
            return
        except IdentityUnavailable as error:
            log.warning("skipping account %s this run: %s", account.account_id, error.message)
            return
        try:
            work.listing = [s for s in self._call(work, lambda: self.subscriptions.list_all(work.tenant_id))
                            if self.subscriptions.is_ours(s)]
            self._delete_unknown_subscriptions(work)
        except (GraphError, Deferred, Failure) as error:
            # Without the listing we cannot reconcile: creating now could duplicate. The rooms
            # waiting to connect say why and when the next attempt is.
            log.warning("account %s: subscriptions could not be listed (%s)", account.account_id, error)
            self._postpone(work, error)
            return
        except ConsentLost as error:
            self._consent_lost(work, str(error))
            return
        connect, maintain = self._candidates(account.account_id)
        in_flight = RoomsInFlight(self.rooms_in_flight)
        # Readers look mailboxes up ($batch) and hand each room to a writer, which subscribes
        # (or renews); several batches and subscriptions are in flight at once, each request
        # admitted by the tenant's gate. Leaving the block waits for the readers first, then
        # for the writers they fed.
        with ThreadPoolExecutor(max_workers=self.workers_per_tenant, thread_name_prefix="connector-write") as writers, \
                ThreadPoolExecutor(max_workers=self.lookups_per_tenant, thread_name_prefix="connector-read") as readers:
            for start in range(0, len(connect), ROOMS_PER_BATCH):
                chunk = connect[start:start + ROOMS_PER_BATCH]
                if not in_flight.take(len(chunk), work):
                    counts.add("left_for_next_run", len(connect) - start)
                    break
                readers.submit(self._connect_chunk, work, chunk, writers, in_flight)
            for position, calendar in enumerate(maintain):
                if not in_flight.take(1, work):
                    counts.add("left_for_next_run", len(maintain) - position)
                    break
                writers.submit(self._maintain_task, work, calendar, in_flight)

    def _connect_chunk(self, work: TenantRun, chunk: list[Calendar], writers: ThreadPoolExecutor,
                       in_flight: RoomsInFlight) -> None:
        """Claim up to 6 rooms, look them up in one `$batch` and hand each to a writer."""
        handed = 0
        try:
            if work.out_of_time() or work.consent_lost.is_set():
                # Waited in the queue past the time limit: claim nothing more.
                work.counts.add("left_for_next_run", len(chunk))
                return
            claimed = self.claim_many(chunk, work.run_id, connecting=True)
            work.counts.add("claimed", len(claimed))
            outcomes = list(self._look_up_mailboxes(work, claimed)) if claimed else []
            settlement = ChunkSettlement(len(outcomes))
            for calendar, outcome in outcomes:
                writers.submit(self._connect_task, work, calendar, outcome, settlement, in_flight)
                handed += 1
        except Exception:  # noqa: BLE001 - the leases expire and the next run retries
            log.exception("connector could not look up %d rooms", len(chunk))
        finally:
            in_flight.give(len(chunk) - handed)

    def _connect_task(self, work: TenantRun, calendar: Calendar, outcome: Mailbox | Failure,
                      settlement: ChunkSettlement, in_flight: RoomsInFlight) -> None:
        settled: Settled | None = None
        try:
            settled = self._connect_one(work, calendar, outcome)
        except Exception:  # noqa: BLE001 - the lease expires and the next run retries
            log.exception("connector step failed for %s", calendar.email)
        finally:
            try:
                chunk = settlement.add(settled)
                if chunk:
                    self._settle_many(work, chunk)
            except Exception:  # noqa: BLE001 - the leases expire and the next run reconciles
                log.exception("connector could not save the rooms claimed with %s", calendar.email)
            finally:
                in_flight.give()

    def _maintain_task(self, work: TenantRun, calendar: Calendar, in_flight: RoomsInFlight) -> None:
        try:
            if work.out_of_time() or work.consent_lost.is_set():
                work.counts.add("left_for_next_run")
                return
            claimed = self._claim(work, calendar, connecting=False)
            if claimed:
                self._guarded(work, self._maintain_one, claimed)
        except Exception:  # noqa: BLE001 - the lease expires and the next run retries
            log.exception("connector could not claim %s", calendar.email)
        finally:
            in_flight.give()

    def _postpone(self, work: TenantRun, error: Exception) -> None:
        connect, _ = self._candidates(work.account.account_id)
        for position, calendar in enumerate(connect):
            if work.out_of_time():
                work.counts.add("left_for_next_run", len(connect) - position)
                return
            claimed = self._claim(work, calendar, connecting=True)
            if claimed:
                self._fail(work, claimed, self._failure_of(work, error, claimed, "list the app's subscriptions"))

    def _guarded(self, work: TenantRun, step: Callable[..., None], calendar: Calendar, *args: Any) -> None:
        try:
            step(work, calendar, *args)
        except Exception:  # noqa: BLE001 - the lease expires and the next run retries
            log.exception("connector step failed for %s", calendar.email)

    # --- choosing and claiming ------------------------------------------------------------------

    def _candidates(self, account_id: str) -> tuple[list[Calendar], list[Calendar]]:
        """(to connect, to renew or reauthorize): queued, failed and due, connecting with an
        expired lease; connected whose subscription expires within a day or asked for it."""
        now = utc_now()
        now_text, renew_text = iso(now) or "", iso(now + RENEW_WITHIN) or ""
        connect: list[Calendar] = []
        maintain: list[Calendar] = []
        # (The SDK substitutes a parameter only when whitespace follows it: never "@now)".)
        query = ("status eq 'queued' or status eq 'connecting' or "
                 "(next_attempt_at le @now and next_attempt_at ne '' and status eq 'failed') or "
                 "(subscription_expires_at le @renew and status eq 'connected') or "
                 "(reauthorize_requested eq true and status eq 'connected')")
        for calendar in self.calendars.all_of(account_id, query, {"now": now_text, "renew": renew_text}):
            if (calendar.extra.get(LEASE_UNTIL) or "") > now_text:
                continue
            (maintain if calendar.status is CalendarStatus.CONNECTED else connect).append(calendar)
        # Oldest first, so a backlog drains in order across runs.
        connect.sort(key=lambda c: (c.status is not CalendarStatus.QUEUED, c.updated_at or ""))
        maintain.sort(key=lambda c: c.subscription_expires_at or "")
        return connect, maintain

    def client_state(self, calendar: Calendar) -> str:
        return client_state_for(self.signing_key, calendar.account_id, calendar.email,
                                str(calendar.extra.get(NONCE) or ""))

    def claim(self, calendar: Calendar, run_id: str, *, connecting: bool, lease: timedelta = LEASE) -> Calendar | None:
        """ETag-guarded claim with a lease; None when someone else holds or just took it.
        For connecting, the nonce of the clientState is saved here, before any subscription exists."""
        if self._with_lease(calendar, run_id, connecting=connecting, lease=lease) is None:
            return None
        try:
            return self.calendars.save(calendar)
        except ConcurrencyConflict:
            return None

    def claim_many(self, calendars: list[Calendar], run_id: str, *, connecting: bool) -> list[Calendar]:
        """Claim rooms of one account in one transaction, as `claim` does each; when one of them
        was changed meanwhile, each is claimed on its own so the others are still taken."""
        if len(calendars) > 1:
            leased = [c for c in (self._with_lease(copy.deepcopy(calendar), run_id, connecting=connecting)
                                  for calendar in calendars) if c is not None]
            try:
                return self.calendars.save_many(leased) if leased else []
            except ConcurrencyConflict:
                pass
        return [c for c in (self.claim(calendar, run_id, connecting=connecting) for calendar in calendars) if c]

    def _with_lease(self, calendar: Calendar, run_id: str, *, connecting: bool,
                    lease: timedelta = LEASE) -> Calendar | None:
        """The calendar with our lease (and, for connecting, its status and nonce) set; None
        when a live lease is someone else's."""
        now = utc_now()
        if (calendar.extra.get(LEASE_UNTIL) or "") > (iso(now) or ""):
            return None
        calendar.extra[LEASE_UNTIL] = iso(now + lease)
        calendar.extra[LEASE_OWNER] = run_id
        if connecting:
            if calendar.status is not CalendarStatus.CONNECTING:
                calendar.set_status(CalendarStatus.CONNECTING, "connecting: checking the mailbox and subscribing")
            if not calendar.extra.get(NONCE):
                calendar.extra[NONCE] = new_nonce()
            calendar.client_state_hash = client_state_hash(self.client_state(calendar))
            calendar.attempts += 1
        return calendar

    def _claim(self, work: TenantRun, calendar: Calendar, *, connecting: bool) -> Calendar | None:
        claimed = self.claim(calendar, work.run_id, connecting=connecting)
        if claimed:
            work.counts.add("claimed")
        return claimed

    def _finish(self, work: TenantRun, calendar: Calendar, change: Callable[[Calendar], None]) -> Calendar | None:
        """Apply `change` and release the lease. A concurrent write (a notification, an admin
        linking a space) is re-read and the change re-applied while the lease is still ours."""
        current: Calendar | None = calendar
        for _ in range(5):
            if current is None or current.extra.get(LEASE_OWNER) != work.run_id:
                return None
            self._release(current, change)
            try:
                return self.calendars.save(current)
            except ConcurrencyConflict:
                current = self.calendars.find(calendar.account_id, calendar.email)
        return None

    @staticmethod
    def _release(calendar: Calendar, change: Callable[[Calendar], None]) -> None:
        change(calendar)
        calendar.extra.pop(LEASE_UNTIL, None)
        calendar.extra.pop(LEASE_OWNER, None)
        calendar.updated_at = iso(utc_now())

    def _settle(self, work: TenantRun, settled: Settled) -> None:
        if self._finish(work, settled.calendar, settled.change):
            work.counts.add(settled.count)
        elif settled.subscription is not None:
            self._abandon(work, settled.calendar, settled.subscription)

    def _settle_many(self, work: TenantRun, chunk: list[Settled]) -> None:
        """Save the outcomes of rooms claimed together: the webhooks' index entries of their new
        subscriptions in one transaction, then the calendars in another; when one of them was
        written meanwhile (a notification, an admin), each is re-read and saved on its own."""
        self.index.put_many(work.account.account_id, [(s.subscription.subscription_id, s.calendar.email)
                                                      for s in chunk if s.subscription is not None])
        if len(chunk) > 1 and all(s.calendar.extra.get(LEASE_OWNER) == work.run_id for s in chunk):
            released = [copy.deepcopy(s.calendar) for s in chunk]
            for settled, calendar in zip(chunk, released, strict=True):
                self._release(calendar, settled.change)
            try:
                self.calendars.save_many(released)
            except ConcurrencyConflict:
                pass
            else:
                for settled in chunk:
                    work.counts.add(settled.count)
                return
        for settled in chunk:
            self._settle(work, settled)

    # --- Graph calls through the gate -----------------------------------------------------------

    def _call(self, work: TenantRun, send: Callable[[], T], *, mailbox: str | None = None,
              write: bool = False) -> T:
        if work.consent_lost.is_set():
            raise ConsentLost("consent was revoked")

        def refresh() -> None:
            self.tokens.forget(work.tenant_id)

        try:
            return work.gate.call(send, counts=work.counts, deadline=work.deadline, mailbox=mailbox, write=write,
                                  on_unauthorized=refresh)
        except TokenRefused as refused:
            if refused.consent_problem:
                raise ConsentLost(refused.message) from None
            raise Failure("transient", f"the tenant refused a token: {refused.message}",
                          utc_now() + timedelta(seconds=RETRY_BASE_SECONDS)) from None
        except GraphError as error:
            if error.status == 401:
                raise ConsentLost("Microsoft Graph refused the app's token: consent was revoked") from None
            raise

    def _consent_lost(self, work: TenantRun, detail: str) -> None:
        if work.consent_lost.is_set():
            return
        work.consent_lost.set()
        reason = "consent revoked or the app's token refused: re-authenticate the account"
        for _ in range(3):
            account = self.accounts.find(work.account.account_id)
            if account is None:
                return
            try:
                self.account_service.mark_needs_reauth(account, reason)
                log.warning("account %s needs re-authentication: %s", account.account_id, detail)
                return
            except ConcurrencyConflict:
                continue

    def _failure_of(self, work: TenantRun, error: Exception, calendar: Calendar, step: str) -> Failure:
        """A reason an admin can act on, and when to try again (transient ones only)."""
        if isinstance(error, Failure):
            return error
        email = calendar.email
        if isinstance(error, ConsentLost):
            self._consent_lost(work, str(error))
            return Failure("consent", "consent revoked: re-authenticate the account")
        if isinstance(error, Deferred):
            delay = max(0.0, (error.retry_at - utc_now()).total_seconds())
            retry_at = utc_now() + timedelta(seconds=retry_delay_seconds(1, delay))
            return Failure("transient", f"{error.reason}, retrying at {retry_at:%H:%M} UTC", retry_at)
        if isinstance(error, IdentityUnavailable):
            retry_at = utc_now() + timedelta(seconds=retry_delay_seconds(calendar.attempts))
            return Failure("transient", f"Microsoft's sign-in service is unavailable, retrying at {retry_at:%H:%M} UTC",
                           retry_at)
        if not isinstance(error, GraphError):
            raise error
        if error.is_access_policy_denial:
            return Failure("policy", f"access to {email} is denied by the tenant's application access policy "
                                     "(or RBAC for Applications): ask the Exchange admin to include this room in "
                                     "the app's scope, then connect again")
        if error.status == 403:
            return Failure("permission", f"the app lacks the permission to {step} ({error.graph_code}): grant "
                                         "Calendars.ReadWrite and User.Read.All, then re-authenticate the account")
        if error.status == 404:
            return Failure("mailbox", f"mailbox not found: {email} does not exist in the tenant or has no "
                                      f"Exchange Online mailbox ({error.graph_code})")
        retry_at = utc_now() + timedelta(seconds=retry_delay_seconds(calendar.attempts, error.retry_after))
        if error.status == 429:
            text = "throttled by Microsoft Graph"
        elif error.graph_code == "ValidationError":
            text = ("Microsoft Graph could not validate the notification URL (check PUBLIC_BASE_URL is reachable "
                    "from the internet)")
        elif error.status == 0:
            text = "Microsoft Graph could not be reached"
        else:
            text = f"Microsoft Graph answered {error.status} {error.graph_code} while trying to {step}"
        return Failure("transient", f"{text}, retrying at {retry_at:%H:%M} UTC", retry_at)

    # --- connecting -----------------------------------------------------------------------------

    def _look_up_mailboxes(self, work: TenantRun, calendars: list[Calendar]
                           ) -> Iterable[tuple[Calendar, Mailbox | Failure]]:
        """The mailbox, its calendar access and its place, for up to 6 rooms in one `$batch`
        (18 reads in one round trip). Items throttled inside the batch are retried."""
        pending: dict[str, tuple[str, str]] = {}
        for number, calendar in enumerate(calendars):
            address = quote(calendar.email, safe="@!$&'*+=^_`{|}~-.")
            pending[f"{number}-user"] = ("GET", f"/users/{address}?$select=id,displayName,mail,userPrincipalName")
            pending[f"{number}-calendar"] = ("GET", f"/users/{address}/calendar?$select=id")
            pending[f"{number}-place"] = ("GET", f"/places/{address}")
        answers: dict[str, dict[str, Any]] = {}
        batch_error: Exception | None = None
        for _ in range(MAX_TRIES_PER_CALL):
            if not pending:
                break
            body = {"requests": [{"id": key, "method": method, "url": url} for key, (method, url) in pending.items()]}
            try:
                reply = self._call(work, lambda body=body: self.graph.request(work.tenant_id, "POST", "$batch",
                                                                              json=body))
            except (GraphError, Deferred, ConsentLost, Failure) as error:
                batch_error = error
                break
            throttled_for = 0.0
            for item in (reply or {}).get("responses") or []:
                key, status = str(item.get("id")), int(item.get("status") or 0)
                if key not in pending:
                    continue
                retry_after = _header_seconds(item.get("headers") or {}, "Retry-After")
                if status in (429, 500, 502, 503, 504):
                    if status == 429:
                        work.counts.add("throttled")
                    throttled_for = max(throttled_for, retry_after if retry_after is not None else 2.0)
                    answers[key] = item
                    continue
                answers[key] = item
                del pending[key]
            if throttled_for:
                work.gate.block_for(throttled_for)
        for number, calendar in enumerate(calendars):
            if batch_error is not None:
                yield calendar, self._failure_of(work, batch_error, calendar, "look up the mailbox")
                continue
            yield calendar, self._mailbox_outcome(work, calendar, answers.get(f"{number}-user"),
                                                  answers.get(f"{number}-calendar"), answers.get(f"{number}-place"))

    def _mailbox_outcome(self, work: TenantRun, calendar: Calendar, user: dict[str, Any] | None,
                         mailbox_calendar: dict[str, Any] | None, place: dict[str, Any] | None) -> Mailbox | Failure:
        for item, step in ((user, "read the mailbox"), (mailbox_calendar, "read the room's calendar")):
            if item is None:
                return self._failure_of(work, Deferred(utc_now(), "Microsoft Graph did not answer"), calendar, step)
            if int(item.get("status") or 0) >= 400:
                return self._failure_of(work, _batch_error(item), calendar, step)
        user_body = (user or {}).get("body") or {}
        place_status = int((place or {}).get("status") or 0)
        place_body = (place or {}).get("body") or {}
        if place_status == 404 or (place_status < 400 and place_body.get("@odata.type", "").lower().endswith(
                "roomlist")):
            return Failure("mailbox", f"{calendar.email} is not a room mailbox (it is a user or a room list): add "
                                      "the room's own address")
        display_name = (place_body.get("displayName") if place_status < 400 else None) or user_body.get(
            "displayName")
        mailbox_id = str(user_body.get("id") or "")
        if not mailbox_id:
            return Failure("mailbox", f"mailbox not found: Graph returned no id for {calendar.email}")
        return Mailbox(mailbox_id, display_name)

    def _connect_one(self, work: TenantRun, calendar: Calendar, outcome: Mailbox | Failure) -> Settled:
        try:
            if isinstance(outcome, Failure):
                raise outcome
            calendar.mailbox_id = outcome.mailbox_id
            subscription = self._subscribe(work, calendar, outcome.mailbox_id, record=False)
        except (GraphError, Deferred, ConsentLost, Failure, IdentityUnavailable) as error:
            return self._failed(calendar, self._failure_of(work, error, calendar, "subscribe to the room's calendar"))

        def connected(current: Calendar) -> None:
            if current.status is not CalendarStatus.CONNECTED:
                current.set_status(CalendarStatus.CONNECTED, "connected: booking changes arrive as they happen")
            current.mailbox_id = outcome.mailbox_id
            current.display_name = outcome.display_name or current.display_name
            current.subscription_id = subscription.subscription_id
            current.subscription_expires_at = subscription.expires_at
            current.client_state_hash = client_state_hash(self.client_state(current))
            current.attempts = 0
            current.next_attempt_at = None
            current.last_error = None
            current.extra.pop(REAUTHORIZE, None)

        return Settled(calendar, connected, "connected", subscription)

    def _abandon(self, work: TenantRun, calendar: Calendar, subscription: GraphSubscription) -> None:
        """The calendar was removed (or the lease lost) while we subscribed: a removed calendar's
        subscription is deleted now; for a lost lease the next run's reconciliation decides."""
        if self.calendars.find(calendar.account_id, calendar.email) is None:
            try:
                self._call(work, lambda: self.subscriptions.delete(work.tenant_id, subscription.subscription_id),
                           write=True)
            except (GraphError, Deferred, ConsentLost, Failure) as error:
                log.warning("could not delete the subscription of removed %s now (%s); the next run will",
                            calendar.email, error)

    def _subscribe(self, work: TenantRun, calendar: Calendar, mailbox_id: str, *,
                   record: bool = True) -> GraphSubscription:
        """Reconcile, then create: adopt the room's subscription whose clientState we derive (or
        the one the calendar already names), delete any other of ours for the room, and create
        one only when none is left. `record=False` leaves the webhooks' index entry to the caller."""
        expected = self.client_state(calendar)
        keys = {mailbox_id.lower(), calendar.email}
        adopted: GraphSubscription | None = None
        for existing in [s for s in work.listing if s.mailbox_key in keys]:
            ours = (existing.client_state is not None and hmac.compare_digest(existing.client_state, expected)) or (
                existing.subscription_id == calendar.subscription_id)
            if adopted is None and ours:
                adopted = existing
                continue
            try:
                self._call(work, lambda s=existing: self.subscriptions.delete(work.tenant_id, s.subscription_id),
                           write=True)
                work.counts.add("orphans_deleted")
            except GraphError as error:
                log.warning("could not delete duplicate subscription for %s (%s)", calendar.email, error.graph_code)
        if adopted is not None:
            try:
                renewed = self._call(work, lambda: self.subscriptions.renew(
                    work.tenant_id, adopted.subscription_id, subscription_expiry()), mailbox=calendar.email,
                    write=True)
                if record:
                    self.index.put(calendar.account_id, renewed.subscription_id, calendar.email)
                return renewed
            except GraphError as error:
                if error.status != 404:
                    raise
        created = self._call(work, lambda: self.subscriptions.create(
            work.tenant_id, mailbox_id, expected, subscription_expiry()), mailbox=calendar.email, write=True)
        if not created.subscription_id:
            raise Failure("transient", "Microsoft Graph answered without a subscription id, retrying next run",
                          utc_now() + timedelta(seconds=RETRY_BASE_SECONDS))
        if record:
            self.index.put(calendar.account_id, created.subscription_id, calendar.email)
        return created

    def _fail(self, work: TenantRun, calendar: Calendar, failure: Failure) -> None:
        self._settle(work, self._failed(calendar, failure))

    @staticmethod
    def _failed(calendar: Calendar, failure: Failure) -> Settled:
        def failed(current: Calendar) -> None:
            current.set_status(CalendarStatus.FAILED, failure.reason, failure.kind)
            current.last_error = failure.reason
            current.next_attempt_at = iso(failure.retry_at) if failure.kind == "transient" else None

        return Settled(calendar, failed, "failed")

    # --- keeping connections alive ----------------------------------------------------------------

    def _maintain_one(self, work: TenantRun, calendar: Calendar) -> None:
        """Reauthorize when Graph asked for it, renew when the expiry is within a day; a
        subscription Graph no longer has (404) is replaced."""
        subscription_id = calendar.subscription_id or ""
        try:
            if calendar.extra.get(REAUTHORIZE) and subscription_id:
                self._call(work, lambda: self.subscriptions.reauthorize(work.tenant_id, subscription_id),
                           mailbox=calendar.email, write=True)
            if subscription_id:
                subscription = self._call(work, lambda: self.subscriptions.renew(
                    work.tenant_id, subscription_id, subscription_expiry()), mailbox=calendar.email, write=True)
            else:
                raise GraphError(404, "ResourceNotFound", "no subscription")
        except GraphError as error:
            if error.status != 404:
                self._keep_trying(work, calendar, self._failure_of(work, error, calendar, "renew the subscription"))
                return
            try:
                subscription = self._subscribe(work, calendar, calendar.mailbox_id or calendar.email)
            except (GraphError, Deferred, ConsentLost, Failure, IdentityUnavailable) as failure:
                self._fail(work, calendar, self._failure_of(work, failure, calendar, "subscribe again"))
                return
        except (Deferred, ConsentLost, Failure, IdentityUnavailable) as error:
            self._keep_trying(work, calendar, self._failure_of(work, error, calendar, "renew the subscription"))
            return

        def renewed(current: Calendar) -> None:
            if current.subscription_id and current.subscription_id != subscription.subscription_id:
                self.index.remove(current.account_id, current.subscription_id)
            current.subscription_id = subscription.subscription_id
            current.subscription_expires_at = subscription.expires_at or current.subscription_expires_at
            current.last_error = None
            current.extra.pop(REAUTHORIZE, None)

        if self._finish(work, calendar, renewed):
            work.counts.add("renewed")

    def _keep_trying(self, work: TenantRun, calendar: Calendar, failure: Failure) -> None:
        """A renewal that failed: transient trouble keeps the calendar connected (the next run
        tries again while the subscription lives); anything else is a failure to act on."""
        expires = parse_iso(calendar.subscription_expires_at)
        if failure.kind == "transient" and expires is not None and expires > utc_now():
            def noted(current: Calendar) -> None:
                current.last_error = failure.reason
            self._finish(work, calendar, noted)
            return
        self._fail(work, calendar, failure)

    def _delete_unknown_subscriptions(self, work: TenantRun) -> None:
        """Delete subscriptions of ours that no calendar knows. Calendars are read after the
        listing, so a subscription saved meanwhile is known; rooms being connected right now
        (connecting, or holding a live lease) are left to their own reconciliation. Such a room
        may not have its mailbox id saved yet, and Graph names the mailbox by id: while one
        does, a subscription for a mailbox no calendar names waits for a later run."""
        known: set[str] = set()
        busy: set[str] = set()
        mailboxes: set[str] = set()
        busy_without_mailbox_id = False
        now_text = iso(utc_now()) or ""
        for calendar in self.calendars.all_of(work.account.account_id):
            keys = {calendar.email} | ({calendar.mailbox_id.lower()} if calendar.mailbox_id else set())
            mailboxes |= keys
            if calendar.subscription_id:
                known.add(calendar.subscription_id.lower())
            if calendar.status is CalendarStatus.CONNECTING or (calendar.extra.get(LEASE_UNTIL) or "") > now_text:
                busy |= keys
                busy_without_mailbox_id = busy_without_mailbox_id or not calendar.mailbox_id

        def may_be_in_progress(subscription: GraphSubscription) -> bool:
            return subscription.mailbox_key in busy or (busy_without_mailbox_id
                                                        and subscription.mailbox_key not in mailboxes)

        for subscription in work.listing:
            if subscription.subscription_id.lower() in known or may_be_in_progress(subscription):
                continue
            try:
                self._call(work, lambda s=subscription: self.subscriptions.delete(work.tenant_id, s.subscription_id),
                           write=True)
                work.counts.add("orphans_deleted")
                log.info("deleted subscription %s that no calendar knows", subscription.subscription_id)
            except GraphError as error:
                log.warning("could not delete unknown subscription %s (%s)", subscription.subscription_id,
                            error.graph_code)
        work.listing = [s for s in work.listing if s.subscription_id.lower() in known or may_be_in_progress(s)]


def _header_seconds(headers: dict[str, Any], name: str) -> float | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


def _batch_error(item: dict[str, Any]) -> GraphError:
    body = item.get("body") or {}
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    return GraphError(int(item.get("status") or 0), str(error.get("code") or f"HTTP{item.get('status')}"),
                      str(error.get("message") or "no message")[:500],
                      _header_seconds(item.get("headers") or {}, "Retry-After"))
