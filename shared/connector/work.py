"""What one run keeps while it works on one tenant: its counts, its deadline, the rooms in flight,
and the outcomes waiting to be saved together.

Owns the bookkeeping shared by the run's threads, each piece guarded by its own lock or
condition. It never talks to Graph or storage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shared.accounts import Account
from shared.calendars import Calendar
from shared.graph import GraphSubscription

if TYPE_CHECKING:
    from shared.connector.gate import TenantGate

# Rooms claimed and not yet finished, per tenant: claims run only as far ahead of the work as
# this, so leases stay short and little is still running when the time limit comes.
ROOMS_IN_FLIGHT = 120


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
