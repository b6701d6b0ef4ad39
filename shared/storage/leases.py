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
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.errors import ConcurrencyConflict, Conflict
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


class LockRows:
    """Rows that are nothing but a lease: one per thing to serialise (a space's booking slot,
    a calendar's sync round). PartitionKey and RowKey name the thing."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def acquire(self, partition_key: str, row_key: str, owner: str, duration: timedelta) -> Lease | None:
        """The lease, or None when someone else holds a live one (or won the race for it)."""
        lease = Lease.new(owner, duration)
        entity = {"PartitionKey": partition_key, "RowKey": row_key, **lease.columns()}
        current = self.table.get(partition_key, row_key)
        try:
            if current is None:
                self.table.insert(entity)
            elif live_lease(current) is not None:
                return None
            else:
                self.table.update({**entity, "_etag": current["_etag"]})
        except (Conflict, ConcurrencyConflict):
            return None
        return lease

    def renew(self, partition_key: str, row_key: str, lease: Lease, duration: timedelta) -> Lease | None:
        """Hold it longer; None when it is no longer ours (expired and taken by someone else)."""
        current = self.table.get(partition_key, row_key)
        if current is None or Lease.from_columns(current) != lease:
            return None
        renewed = lease.renewed(duration)
        try:
            self.table.update({**current, **renewed.columns()})
        except ConcurrencyConflict:
            return None
        return renewed

    def release(self, partition_key: str, row_key: str, lease: Lease) -> None:
        """Give it up if it is still ours; gone or someone else's is no error."""
        current = self.table.get(partition_key, row_key)
        if current is None or Lease.from_columns(current) != lease:
            return
        try:
            self.table.delete(partition_key, row_key, etag=current["_etag"])
        except ConcurrencyConflict:
            return
