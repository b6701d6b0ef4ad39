"""Keeping a live run's claims alive: one background thread per run renews the leases of the rooms
it still holds before they lapse, and pushes on its run record's heartbeat.

Owns renewing the leases of the rooms a run holds (`claims.HeldRooms`) that have less than
half their length left — read afresh,
renewed only while the row still carries this claim (owner and nonce), written If-Match in one
entity-group transaction per 100 rooms of an account. A room whose step finishes within half a
lease of its claim is never written here, so a run that keeps up costs no extra write per room.
Leases are short (`claims.LEASE`), so rooms a killed run held are claimable again within minutes. The
keeper stops at the run's hard deadline (time limit plus `RUN_MARGIN`): past it, leases lapse
and the record reads as interrupted. It never changes anything of a room but its lease's expiry.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

from shared.calendars import Calendar, CalendarRepository
from shared.connector.claims import HeldRooms, RoomKey
from shared.connector.runs import RunRecords
from shared.errors import ConcurrencyConflict
from shared.models import iso, utc_now
from shared.storage import MAX_BATCH_SIZE

log = logging.getLogger("rcc.connector")

# The keeper looks this often and renews leases with less than half their length left; a run's
# record says it is alive for three looks more.
RENEW_EVERY = timedelta(seconds=30)


class LeaseKeeper:
    """The background thread of one run (a context manager: it runs while the block does)."""

    def __init__(self, *, calendars: CalendarRepository, held: HeldRooms, runs: RunRecords,
                 record: dict[str, Any], run_id: str, lease: timedelta, every: timedelta,
                 hard_deadline: float) -> None:
        self.calendars = calendars
        self.held = held
        self.runs = runs
        self.record = record
        self.run_id = run_id
        self.lease = lease
        self.every = every
        self.hard_deadline = hard_deadline  # time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"connector-keeper-{run_id}", daemon=True)

    @staticmethod
    def alive_for(every: timedelta) -> timedelta:
        return every * 3

    def __enter__(self) -> LeaseKeeper:
        self.held.open(self.run_id)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.held.forget_run(self.run_id)

    def _loop(self) -> None:
        while not self._stop.wait(self.every.total_seconds()):
            if time.monotonic() >= self.hard_deadline:
                log.warning("connector run %s is past its time limit and margin: its leases lapse", self.run_id)
                return
            try:
                self.renew_due()
                self.runs.heartbeat(self.record, self.alive_for(self.every))
            except Exception:  # noqa: BLE001 - the next look tries again; a lease lapses at worst
                log.exception("connector run %s could not renew its leases", self.run_id)

    def renew_due(self) -> int:
        """Renew the held leases with less than half their length left; how many were renewed."""
        renew_before = iso(utc_now() + self.lease / 2) or ""
        due: dict[str, list[RoomKey]] = {}
        for key, lease in self.held.held(self.run_id).items():
            if lease.expires_at < renew_before:
                due.setdefault(key[0], []).append(key)
        renewed = 0
        for keys in due.values():
            for start in range(0, len(keys), MAX_BATCH_SIZE):
                renewed += self._renew(keys[start:start + MAX_BATCH_SIZE])
        return renewed

    def _renew(self, keys: list[RoomKey]) -> int:
        held = self.held.held(self.run_id)
        rooms: list[Calendar] = []
        for key in keys:
            current = self.calendars.find(*key)
            ours = held.get(key)
            if current is None or current.lease is None or ours is None or \
                    (current.lease.owner, current.lease.nonce) != (ours.owner, ours.nonce):
                continue  # finished (or lost) meanwhile
            current.lease = current.lease.renewed(self.lease)
            rooms.append(current)
        try:
            if len(rooms) > 1:
                self.calendars.save_many(rooms)
            elif rooms:
                self.calendars.save(rooms[0])
            saved = rooms
        except ConcurrencyConflict:
            saved = []
            for room in rooms:  # one of them was written meanwhile: each on its own
                try:
                    saved.append(self.calendars.save(room))
                except ConcurrencyConflict:
                    continue
        for room in saved:
            if room.lease is not None:
                self.held.renewed((room.account_id, room.email), room.lease)
        return len(saved)
