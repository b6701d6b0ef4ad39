"""One connector run: connect queued calendars, renew subscriptions, retry failures that are due.

Owns which calendars need work and the order of a run. Per tenant (4 tenants at a time),
readers look rooms up in `$batch` chunks of 6 and hand each room to a writer, which subscribes
(or renews); several chunks and subscriptions are in flight at once on bounded pools, every
request admitted by the tenant's gate, and claims run only a bounded number of rooms ahead of
the work. It never works past the run's time limit on new claims (the rest is left for the
next run), and a run may overlap another (a past-due run, a manual fire): claims are leases,
so no room is connected twice. While a run is alive its `keeper` renews the leases of the rooms
it still holds and its record's heartbeat; a killed run's rooms are claimable again once their
short leases lapse, and its record reads as interrupted. What makes each step restartable is in
`claims` and `subscribe`.
https://learn.microsoft.com/graph/throttling, https://learn.microsoft.com/graph/json-batching
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from shared.accounts import Account, AccountRepository, AccountService
from shared.calendars import Calendar, CalendarRepository
from shared.connector.calls import GraphCalls
from shared.connector.claims import LEASE, Claims
from shared.connector.failures import ConsentLost, Failure
from shared.connector.gate import Deferred, TenantGate
from shared.connector.keeper import RENEW_EVERY, LeaseKeeper
from shared.connector.lookups import look_up_mailboxes
from shared.connector.runs import RUN_MARGIN, RunRecords
from shared.connector.subscribe import Subscriber, failed
from shared.connector.work import ROOMS_IN_FLIGHT, ChunkSettlement, RoomsInFlight, RunCounts, Settled, TenantRun
from shared.graph import RENEW_WITHIN, GraphClient, GraphError, IdentityUnavailable, SubscriptionManager, TokenRefused
from shared.graph.mailboxes import ROOMS_PER_BATCH, Mailbox
from shared.models import AccountStatus, CalendarStatus, iso, utc_now
from shared.notifications import SubscriptionIndex, client_state_hash

log = logging.getLogger("rcc.connector")

# Per tenant: writers subscribe and renew, readers run the mailbox look-ups ($batch). Graph
# answers each request in tens of milliseconds or more, so one request at a time caps a tenant
# far below its subscription-write limit; these keep enough in flight to reach it.
WORKERS_PER_TENANT = 16
LOOKUPS_PER_TENANT = 10
CONCURRENT_TENANTS = 4


class Connector:
    def __init__(
        self,
        *,
        calendars: CalendarRepository,
        account_service: AccountService,
        graph: GraphClient,
        subscriptions: SubscriptionManager,
        index: SubscriptionIndex,
        runs: RunRecords,
        signing_key: bytes,
        time_limit_seconds: int,
        workers_per_tenant: int = WORKERS_PER_TENANT,
        lookups_per_tenant: int = LOOKUPS_PER_TENANT,
        rooms_in_flight: int = ROOMS_IN_FLIGHT,
        on_subscribed: Callable[[list[Calendar]], object] | None = None,
        lease: timedelta = LEASE,
        renew_every: timedelta = RENEW_EVERY,
    ) -> None:
        self.calendars = calendars
        self.accounts: AccountRepository = account_service.accounts
        self.graph = graph
        self.tokens = graph.tokens
        self.subscriptions = subscriptions
        self.runs = runs
        self.time_limit_seconds = time_limit_seconds
        self.workers_per_tenant = workers_per_tenant
        self.lookups_per_tenant = lookups_per_tenant
        self.rooms_in_flight = max(rooms_in_flight, ROOMS_PER_BATCH)
        self.calls = GraphCalls(self.tokens, account_service)
        self.renew_every = renew_every
        self.claims = Claims(calendars, index, signing_key, on_subscribed, lease=lease)
        self.subscriber = Subscriber(calls=self.calls, claims=self.claims, calendars=calendars,
                                     subscriptions=subscriptions, index=index)
        self._gates: dict[str, TenantGate] = {}
        self._gates_lock = threading.Lock()

    # --- the run ----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """One timer run over every verified account. Safe to overlap with another run."""
        started = utc_now()
        run_id = uuid.uuid4().hex[:16]
        deadline = time.monotonic() + self.time_limit_seconds
        counts = RunCounts()
        record = self.runs.start(run_id, started, time_limit_seconds=self.time_limit_seconds,
                                 alive_for=LeaseKeeper.alive_for(self.renew_every))
        accounts = [a for a in self.accounts.all() if a.status is AccountStatus.VERIFIED]
        keeper = LeaseKeeper(calendars=self.calendars, held=self.claims.held, runs=self.runs, record=record,
                             run_id=run_id, lease=self.claims.lease, every=self.renew_every,
                             hard_deadline=deadline + RUN_MARGIN.total_seconds())
        with keeper, ThreadPoolExecutor(max_workers=max(1, min(CONCURRENT_TENANTS, len(accounts)))) as pool:
            futures = [pool.submit(self._run_account, account, run_id, counts, deadline) for account in accounts]
            for account, future in zip(accounts, futures, strict=True):
                try:
                    future.result()
                except Exception:  # noqa: BLE001 - one tenant's failure must not stop the others
                    log.exception("connector run %s failed for account %s", run_id, account.account_id)
        self.claims.ask_first_rounds()  # what a failed tenant's run subscribed before it failed
        summary = {"started_at": iso(started), "finished_at": iso(utc_now()), **counts.as_dict()}
        self.runs.finish(record, summary)
        log.info("connector run %s: %s", run_id, summary)
        return summary

    def status(self) -> dict[str, Any]:
        return self.runs.status()

    def gate(self, tenant_id: str) -> TenantGate:
        with self._gates_lock:
            return self._gates.setdefault(tenant_id, TenantGate())

    def claim(self, calendar: Calendar, run_id: str, *, connecting: bool,
              lease: timedelta | None = None) -> Calendar | None:
        return self.claims.claim(calendar, run_id, connecting=connecting, lease=lease)

    def claim_many(self, calendars: list[Calendar], run_id: str, *, connecting: bool) -> list[Calendar]:
        return self.claims.claim_many(calendars, run_id, connecting=connecting)

    def _run_account(self, account: Account, run_id: str, counts: RunCounts, deadline: float) -> None:
        try:
            self._connect_account(account, run_id, counts, deadline)
        finally:
            # The tenant's new rooms get their first sync once its connecting is done, not amid it.
            self.claims.ask_first_rounds(account.account_id)

    def _connect_account(self, account: Account, run_id: str, counts: RunCounts, deadline: float) -> None:
        work = TenantRun(account, run_id, self.gate(account.tenant_id), counts, deadline)
        try:
            self.tokens.acquire(account.tenant_id)
        except TokenRefused as refused:
            if refused.consent_problem:
                self.calls.consent_lost(work, refused.message)
            else:
                log.warning("token refused for account %s: %s", account.account_id, refused.message)
            return
        except IdentityUnavailable as error:
            log.warning("skipping account %s this run: %s", account.account_id, error.message)
            return
        try:
            work.listing = [s for s in self.calls.call(work, lambda: self.subscriptions.list_all(
                work.tenant_id, max_wait_seconds=0)) if self.subscriptions.is_ours(s)]
            self.subscriber.delete_unknown_subscriptions(work)
        except (GraphError, Deferred, Failure) as error:
            # Without the listing we cannot reconcile: creating now could duplicate. The rooms
            # waiting to connect say why and when the next attempt is.
            log.warning("account %s: subscriptions could not be listed (%s)", account.account_id, error)
            self._postpone(work, error)
            return
        except ConsentLost as error:
            self.calls.consent_lost(work, str(error))
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

    def _candidates(self, account_id: str) -> tuple[list[Calendar], list[Calendar]]:
        """(to connect, to renew or reauthorize), leaving out rooms another run holds a live lease on."""
        now = utc_now()
        connect: list[Calendar] = []
        maintain: list[Calendar] = []
        for calendar in self.calendars.due_for_connection(account_id, now, now + RENEW_WITHIN):
            if calendar.lease is not None and calendar.lease.is_live(now):
                continue
            (maintain if calendar.status is CalendarStatus.CONNECTED else connect).append(calendar)
        # Oldest first, so a backlog drains in order across runs.
        connect.sort(key=lambda c: (c.status is not CalendarStatus.QUEUED, c.updated_at or ""))
        maintain.sort(key=lambda c: c.subscription_expires_at or "")
        return connect, maintain

    # --- the tasks of a tenant's run ------------------------------------------------------------

    def _connect_chunk(self, work: TenantRun, chunk: list[Calendar], writers: ThreadPoolExecutor,
                       in_flight: RoomsInFlight) -> None:
        """Claim up to 6 rooms, look them up in one `$batch` and hand each to a writer."""
        handed = 0
        try:
            if work.out_of_time() or work.consent_lost.is_set():
                # Waited in the queue past the time limit: claim nothing more.
                work.counts.add("left_for_next_run", len(chunk))
                return
            claimed = self.claims.claim_many(chunk, work.run_id, connecting=True)
            work.counts.add("claimed", len(claimed))
            outcomes = list(look_up_mailboxes(self.calls, self.graph, work, claimed)) if claimed else []
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
            self.claims.let_go(work, calendar)
        finally:
            try:
                chunk = settlement.add(settled)
                if chunk:
                    self.claims.settle_many(work, chunk, self.subscriber.abandon)
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
                self._guarded(work, self.subscriber.maintain_one, claimed)
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
                self.subscriber.fail(work, claimed,
                                     self.calls.failure_of(work, error, claimed, "list the app's subscriptions"))

    def _guarded(self, work: TenantRun, step: Callable[..., None], calendar: Calendar, *args: Any) -> None:
        try:
            step(work, calendar, *args)
        except Exception:  # noqa: BLE001 - the lease expires and the next run retries
            log.exception("connector step failed for %s", calendar.email)
            self.claims.let_go(work, calendar)

    def _claim(self, work: TenantRun, calendar: Calendar, *, connecting: bool) -> Calendar | None:
        claimed = self.claims.claim(calendar, work.run_id, connecting=connecting)
        if claimed:
            work.counts.add("claimed")
        return claimed

    def _connect_one(self, work: TenantRun, calendar: Calendar, outcome: Mailbox | Failure) -> Settled:
        try:
            if isinstance(outcome, Failure):
                raise outcome
            calendar.mailbox_id = outcome.mailbox_id
            subscription = self.subscriber.subscribe(work, calendar, outcome.mailbox_id, record=False)
        except (GraphError, Deferred, ConsentLost, Failure, IdentityUnavailable) as error:
            return failed(calendar, self.calls.failure_of(work, error, calendar, "subscribe to the room's calendar"))

        def connected(current: Calendar) -> None:
            if current.status is not CalendarStatus.CONNECTED:
                current.set_status(CalendarStatus.CONNECTED, "connected: booking changes arrive as they happen")
            current.mailbox_id = outcome.mailbox_id
            current.display_name = outcome.display_name or current.display_name
            current.subscription_id = subscription.subscription_id
            current.subscription_expires_at = subscription.expires_at
            current.client_state_hash = client_state_hash(self.claims.client_state(current))
            current.attempts = 0
            current.next_attempt_at = None
            current.last_error = None
            current.reauthorize_requested = False

        return Settled(calendar, connected, "connected", subscription)
