"""Where each calendar's sync stands: the SyncStates table (PartitionKey = account id, RowKey = email).

Owns one row per synced calendar: the round's lease (one round per calendar at a time, on any
instance), when the running and the last finished round started (what coalesces notifications),
the stored deltaLink and the window it belongs to, counts, the next bookings for the page and
what the next round works them out from (`upcoming.Upcoming`), and the last sync error. Every
write is If-Match: a round that lost its lease learns it when it saves, and so does a round whose
calendar was removed meanwhile (removing it deletes this row first). It never calls Graph.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.bookings.upcoming import Upcoming
from shared.models import iso, utc_now
from shared.storage import Lease, Parallel, Table


@dataclass
class SyncState:
    account_id: str
    email: str
    lease: Lease | None = None
    round_started_at: str = ""  # the running round's start (with the lease)
    round_is_full: bool = False
    last_round_started_at: str = ""  # the last finished round's start: what it has seen
    delta_link: str = ""
    window_start: str = ""
    window_end: str = ""
    last_synced_at: str = ""
    last_full_at: str = ""  # when the last full round started
    bookings: int = 0
    next_bookings: list[dict[str, Any]] = field(default_factory=list)
    upcoming: Upcoming | None = None  # what the next bookings were chosen from (None: ask the table)
    last_error: str = ""
    error_at: str = ""
    errors: int = 0
    write_error: str = ""  # why the last booking written through the API was refused
    write_error_at: str = ""
    etag: str | None = None

    def to_entity(self) -> dict[str, Any]:
        return {
            "PartitionKey": self.account_id, "RowKey": self.email,
            **(self.lease.columns() if self.lease else Lease.cleared()),
            "round_started_at": self.round_started_at, "round_is_full": self.round_is_full,
            "last_round_started_at": self.last_round_started_at,
            "delta_link": self.delta_link, "window_start": self.window_start, "window_end": self.window_end,
            "last_synced_at": self.last_synced_at, "last_full_at": self.last_full_at, "bookings": self.bookings,
            "next_bookings": json.dumps(self.next_bookings),
            "upcoming": self.upcoming.to_json() if self.upcoming else "", "last_error": self.last_error,
            "error_at": self.error_at, "errors": self.errors, "write_error": self.write_error,
            "write_error_at": self.write_error_at, "_etag": self.etag,
        }

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> SyncState:
        text = {name: str(entity.get(name) or "") for name in (
            "round_started_at", "last_round_started_at", "delta_link", "window_start", "window_end",
            "last_synced_at", "last_full_at", "last_error", "error_at", "write_error", "write_error_at")}
        return cls(account_id=entity["PartitionKey"], email=entity["RowKey"], lease=Lease.from_columns(entity),
                   round_is_full=bool(entity.get("round_is_full")), bookings=int(entity.get("bookings") or 0),
                   errors=int(entity.get("errors") or 0),
                   next_bookings=json.loads(entity.get("next_bookings") or "[]"),
                   upcoming=Upcoming.from_json(entity.get("upcoming")), etag=entity.get("_etag"),
                   **text)

    def summary(self, now: datetime | None = None) -> dict[str, Any]:
        """What the page shows of it: last synced, bookings in the window, the next ones, the error."""
        moment = iso(now or utc_now()) or ""
        return {
            "last_synced_at": self.last_synced_at or None,
            "bookings_in_window": self.bookings,
            "window": {"start": self.window_start, "end": self.window_end} if self.window_start else None,
            "next_bookings": [b for b in self.next_bookings if str(b.get("end") or "") > moment],
            "syncing": self.lease is not None and self.lease.is_live(),
            "last_error": self.last_error or None,
            "error_at": self.error_at or None,
            "write_error": self.write_error or None,
            "write_error_at": self.write_error_at or None,
        }


class SyncStates:
    def __init__(self, table: Table, parallel: Parallel) -> None:
        self.table = table
        self.parallel = parallel

    def get(self, account_id: str, email: str) -> SyncState:
        """The calendar's state; a fresh one (no row yet, no ETag) when it was never synced."""
        entity = self.table.get(account_id, email)
        return SyncState.from_entity(entity) if entity else SyncState(account_id, email)

    def save(self, state: SyncState) -> SyncState:
        """Insert a fresh state, or replace it If-Match; `Conflict` / `ConcurrencyConflict` when
        someone wrote it first."""
        saved = self.table.update(state.to_entity()) if state.etag else self.table.insert(state.to_entity())
        state.etag = saved["_etag"]
        return state

    def save_all(self, states: list[SyncState]) -> None:
        """Save states of one account as `save` does, in one transaction: all or none; `Conflict` /
        `ConcurrencyConflict` when any was written first."""
        saved = self.table.transact([("update" if state.etag else "create", state.to_entity()) for state in states])
        for state, entity in zip(states, saved, strict=True):
            state.etag = entity["_etag"]

    def of_account(self, account_id: str) -> Iterator[SyncState]:
        for entity in self.table.query_all("PartitionKey eq @a", parameters={"a": account_id}):
            yield SyncState.from_entity(entity)

    def of_calendars(self, account_id: str, emails: list[str]) -> dict[str, SyncState]:
        """The states of these calendars (`Table.get_many`: the key queries side by side); missing
        ones left out."""
        found = self.table.get_many(account_id, emails, self.parallel.run)
        return {email: SyncState.from_entity(entity) for email, entity in found.items()}

    def delete(self, account_id: str, email: str) -> None:
        self.table.delete(account_id, email)
