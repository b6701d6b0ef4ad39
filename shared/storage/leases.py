"""The one claim primitive: a typed lease (owner, nonce, expiry) kept in a row and written with its ETag.

Owns what a lease is, how it is written into an entity's columns and read back, and lock rows
that hold nothing but a lease. Whoever holds a live lease on a row may work on what the row
stands for; a lease that is not renewed expires, so work a killed process held is taken up
again once it has. Writes are If-Match: of two claims of one row, one wins and the other
sees `ConcurrencyConflict` (or `None` from `LockRows.acquire`), never a silent overwrite. It
never decides what the work is.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.errors import ConcurrencyConflict, Conflict, Unavailable
from shared.models import iso, parse_iso, utc_now
from shared.storage.tables import Table

COLUMNS = ("owner", "nonce", "expires_at")


@dataclass(frozen=True)
class Lease:
    """Who holds a row's work (`owner`, e.g. a run id), which claim it is (`nonce`), and until when."""

    owner: str
    nonce: str
    expires_at: str  # ISO 8601 UTC, as the tables keep moments

    @classmethod
    def new(cls, owner: str, duration: timedelta, now: datetime | None = None) -> Lease:
        return cls(owner, secrets.token_urlsafe(12), iso((now or utc_now()) + duration) or "")

    def renewed(self, duration: timedelta, now: datetime | None = None) -> Lease:
        """The same claim, held longer."""
        return Lease(self.owner, self.nonce, iso((now or utc_now()) + duration) or "")

    def is_live(self, now: datetime | None = None) -> bool:
        return self.expires_at > (iso(now or utc_now()) or "")

    @property
    def expires(self) -> datetime | None:
        return parse_iso(self.expires_at)

    def columns(self, prefix: str = "lease") -> dict[str, str]:
        return {f"{prefix}_{name}": getattr(self, name) for name in COLUMNS}

    @staticmethod
    def cleared(prefix: str = "lease") -> dict[str, str]:
        """The columns of no lease (a replace keeps every column, so they are written empty)."""
        return {f"{prefix}_{name}": "" for name in COLUMNS}

    @classmethod
    def from_columns(cls, entity: Mapping[str, Any], prefix: str = "lease") -> Lease | None:
        owner = entity.get(f"{prefix}_owner") or ""
        expires_at = entity.get(f"{prefix}_expires_at") or ""
        if not owner or not expires_at:
            return None
        return cls(str(owner), str(entity.get(f"{prefix}_nonce") or ""), str(expires_at))


def live_lease(entity: Mapping[str, Any], now: datetime | None = None, prefix: str = "lease") -> Lease | None:
    """The row's lease while it is live, else None."""
    lease = Lease.from_columns(entity, prefix)
    return lease if lease is not None and lease.is_live(now) else None


@dataclass(frozen=True)
class Held:
    """A lock row's lease as written, with the ETag that releases it."""

    partition_key: str
    row_key: str
    lease: Lease
    etag: str


class LockRows:
    """Rows that are nothing but a lease: one per thing to serialise (a room's booking slots).
    PartitionKey and RowKey name the thing; the row exists only while it is held."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def acquire(self, partition_key: str, row_key: str, owner: str, duration: timedelta) -> Held | None:
        """The lease, or None when someone else holds a live one (or won the race for it). Rows are
        removed on release, so the usual case is one insert."""
        lease = Lease.new(owner, duration)
        entity = {"PartitionKey": partition_key, "RowKey": row_key, **lease.columns()}
        try:
            return Held(partition_key, row_key, lease, self.table.insert(entity)["_etag"])
        except Conflict:
            pass
        current = self.table.get(partition_key, row_key)
        if current is None or live_lease(current) is not None:
            return None  # released meanwhile (the caller tries again) or held
        try:
            saved = self.table.update({**entity, "_etag": current["_etag"]})
        except ConcurrencyConflict:
            return None
        return Held(partition_key, row_key, lease, saved["_etag"])

    @contextmanager
    def held(self, partition_key: str, row_key: str, owner: str, duration: timedelta, *,
             wait_seconds: float) -> Iterator[Held]:
        """Hold the row's lease for the block, waiting up to `wait_seconds` for it (a short back-off
        between tries); `Unavailable` when it is still held after that. Released at the end."""
        deadline = time.monotonic() + wait_seconds
        delay = 0.02
        while True:
            held = self.acquire(partition_key, row_key, owner, duration)
            if held is not None:
                break
            if time.monotonic() + delay > deadline:
                raise Unavailable("this is being changed by another request right now; try again", retry_after=2)
            time.sleep(delay)  # a bounded back-off between If-Match tries
            delay = min(delay * 2, 0.25)
        try:
            yield held
        finally:
            try:
                self.table.delete(partition_key, row_key, etag=held.etag)
            except ConcurrencyConflict:
                pass  # it expired and someone else holds it now

