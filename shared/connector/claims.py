"""Claiming a calendar for one run, and saving what the run did to it.

Owns the connector's lease on a calendar row (`Lease` in the row, written If-Match): a claim
that loses the race skips the room; a run killed midway leaves a lease that expires, after
which the room is claimable again. For connecting, the nonce of the room's clientState is
saved with the claim, before any subscription exists, so the next run can recognise what a
killed run created. The rooms of one `$batch` look-up are claimed in one entity-group
transaction and their outcomes saved in another; when one of them was written meanwhile (a
notification, an admin), each is claimed — or re-read and saved — on its own. What each run
of this process holds is kept in `HeldRooms`, so its `keeper` can renew those leases while the
run is alive. It never talks to Graph.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from shared.calendars import Calendar, CalendarRepository
from shared.connector.work import Settled, TenantRun
from shared.errors import ConcurrencyConflict
from shared.graph import GraphSubscription
from shared.models import CalendarStatus, iso, utc_now
from shared.notifications import SubscriptionIndex, client_state_for, client_state_hash, new_nonce
from shared.storage import Lease

log = logging.getLogger("rcc.connector")

# Short, and renewed while the run is alive (`keeper`): the rooms a killed run held wait minutes,
# not the ten they used to.
LEASE = timedelta(minutes=3)
# How many times a change is re-applied to a calendar written meanwhile while the lease is ours.
FINISH_ATTEMPTS = 5

Abandon = Callable[[TenantRun, Calendar, GraphSubscription], None]
RoomKey = tuple[str, str]  # (account id, email)


class HeldRooms:
    """The leases the runs of this process hold on rooms they have not finished, per run (only
    runs whose keeper is open: a claim made outside a run is left to expire)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_run: dict[str, dict[RoomKey, Lease]] = {}

    def open(self, run_id: str) -> None:
        with self._lock:
            self._by_run.setdefault(run_id, {})

    def hold(self, calendar: Calendar) -> None:
        if calendar.lease is None:
            return
        with self._lock:
            rooms = self._by_run.get(calendar.lease.owner)
            if rooms is not None:
                rooms[(calendar.account_id, calendar.email)] = calendar.lease

    def let_go(self, run_id: str, account_id: str, email: str) -> None:
        with self._lock:
            self._by_run.get(run_id, {}).pop((account_id, email), None)

    def held(self, run_id: str) -> dict[RoomKey, Lease]:
        with self._lock:
            return dict(self._by_run.get(run_id, {}))

    def renewed(self, key: RoomKey, lease: Lease) -> None:
        with self._lock:
            rooms = self._by_run.get(lease.owner)
            if rooms is not None and key in rooms:
                rooms[key] = lease

    def forget_run(self, run_id: str) -> None:
        with self._lock:
            self._by_run.pop(run_id, None)


class Claims:
    def __init__(self, calendars: CalendarRepository, index: SubscriptionIndex, signing_key: bytes,
                 on_subscribed: Callable[[list[Calendar]], object] | None = None, lease: timedelta = LEASE) -> None:
        self.calendars = calendars
        self.index = index
        self.signing_key = signing_key
        self.on_subscribed = on_subscribed
        self.lease = lease
        self.held = HeldRooms()
        self._first_rounds: dict[str, list[Calendar]] = {}
        self._first_rounds_lock = threading.Lock()

    def subscribed(self, calendars: list[Calendar]) -> None:
        """Rooms with a new (or re-created) subscription: their bookings are read afresh (a full
        round), asked for by `ask_first_rounds` once the tenant's connecting is done, so the rounds
        do not compete with it."""
        if not calendars or self.on_subscribed is None:
            return
        with self._first_rounds_lock:
            for calendar in calendars:
                self._first_rounds.setdefault(calendar.account_id, []).append(calendar)

    def ask_first_rounds(self, account_id: str | None = None) -> None:
        """Ask for the full rounds of the rooms subscribed since (of one account, or all). Asking may
        fail (the queue is down); the sweep then finds the rooms that never synced."""
        with self._first_rounds_lock:
            accounts = [account_id] if account_id is not None else list(self._first_rounds)
            rooms = [calendar for account in accounts for calendar in self._first_rounds.pop(account, [])]
        if not rooms or self.on_subscribed is None:
            return
        try:
            self.on_subscribed(rooms)
        except Exception:  # noqa: BLE001 - the connections stand; the sweep syncs them
            log.warning("could not ask for the first sync of %d rooms", len(rooms), exc_info=True)

    def client_state(self, calendar: Calendar) -> str:
        return client_state_for(self.signing_key, calendar.account_id, calendar.email,
                                calendar.subscription_nonce or "")

    def claim(self, calendar: Calendar, run_id: str, *, connecting: bool,
              lease: timedelta | None = None) -> Calendar | None:
        """ETag-guarded claim with a lease; None when someone else holds or just took it.
        For connecting, the nonce of the clientState is saved here, before any subscription exists."""
        if self._with_lease(calendar, run_id, connecting=connecting, lease=lease) is None:
            return None
        try:
            saved = self.calendars.save(calendar)
        except ConcurrencyConflict:
            return None
        self.held.hold(saved)
        return saved

    def claim_many(self, calendars: list[Calendar], run_id: str, *, connecting: bool) -> list[Calendar]:
        """Claim rooms of one account in one transaction, as `claim` does each; when one of them
        was changed meanwhile, each is claimed on its own so the others are still taken."""
        if len(calendars) > 1:
            leased = [c for c in (self._with_lease(copy.deepcopy(calendar), run_id, connecting=connecting)
                                  for calendar in calendars) if c is not None]
            try:
                saved = self.calendars.save_many(leased) if leased else []
            except ConcurrencyConflict:
                pass
            else:
                for calendar in saved:
                    self.held.hold(calendar)
                return saved
        return [c for c in (self.claim(calendar, run_id, connecting=connecting) for calendar in calendars) if c]

    def _with_lease(self, calendar: Calendar, run_id: str, *, connecting: bool,
                    lease: timedelta | None = None) -> Calendar | None:
        """The calendar with our lease (and, for connecting, its status and nonce) set; None
        when a live lease is someone else's."""
        now = utc_now()
        if calendar.lease is not None and calendar.lease.is_live(now):
            return None
        calendar.lease = Lease.new(run_id, self.lease if lease is None else lease, now)
        if connecting:
            if calendar.status is not CalendarStatus.CONNECTING:
                calendar.set_status(CalendarStatus.CONNECTING, "connecting: checking the mailbox and subscribing")
            if not calendar.subscription_nonce:
                calendar.subscription_nonce = new_nonce()
            calendar.client_state_hash = client_state_hash(self.client_state(calendar))
            calendar.attempts += 1
        return calendar

    def finish(self, work: TenantRun, calendar: Calendar, change: Callable[[Calendar], None]) -> Calendar | None:
        """Apply `change` and release the lease. A concurrent write (a notification, an admin
        linking a space) is re-read and the change re-applied while the lease is still ours."""
        def apply(current: Calendar) -> bool:
            # Written meanwhile (a notification, an admin, our own keeper renewing the lease): re-read.
            if current.lease is None or current.lease.owner != work.run_id:
                return False
            self.release(current, change)
            return True

        try:
            return self.calendars.change(calendar, apply, attempts=FINISH_ATTEMPTS)
        finally:
            self.let_go(work, calendar)

    def let_go(self, work: TenantRun, calendar: Calendar) -> None:
        """The run is done with the room (saved, or left for its lease to expire): no more renewals."""
        self.held.let_go(work.run_id, calendar.account_id, calendar.email)

    @staticmethod
    def release(calendar: Calendar, change: Callable[[Calendar], None]) -> None:
        change(calendar)
        calendar.lease = None
        calendar.updated_at = iso(utc_now())

    def settle(self, work: TenantRun, settled: Settled, abandon: Abandon) -> None:
        saved = self.finish(work, settled.calendar, settled.change)
        if saved:
            work.counts.add(settled.count)
            if settled.count == "connected":
                self.subscribed([saved])
        elif settled.subscription is not None:
            abandon(work, settled.calendar, settled.subscription)

    def settle_many(self, work: TenantRun, chunk: list[Settled], abandon: Abandon) -> None:
        """Save the outcomes of rooms claimed together: the webhooks' index entries of their new
        subscriptions in one transaction, then the calendars in another; when one of them was
        written meanwhile (a notification, an admin), each is re-read and saved on its own."""
        self.index.put_many(work.account.account_id, [(s.subscription.subscription_id, s.calendar.email)
                                                      for s in chunk if s.subscription is not None])
        if len(chunk) > 1 and all(s.calendar.lease is not None and s.calendar.lease.owner == work.run_id
                                  for s in chunk):
            released = [copy.deepcopy(s.calendar) for s in chunk]
            for settled, calendar in zip(chunk, released, strict=True):
                self.release(calendar, settled.change)
            try:
                self.calendars.save_many(released)
            except ConcurrencyConflict:
                pass
            else:
                for settled in chunk:
                    self.let_go(work, settled.calendar)
                    work.counts.add(settled.count)
                self.subscribed([calendar for settled, calendar in zip(chunk, released, strict=True)
                                 if settled.count == "connected"])
                return
        for settled in chunk:
            self.settle(work, settled, abandon)
