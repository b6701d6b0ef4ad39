"""A room calendar of an account, as the Calendars table keeps it.

Owns what a calendar holds — status and failure, its space, its mailbox and subscription, the
connector's lease, the nonce its clientState is derived from, the reauthorize flag, and the
mark the CSV import leaves on what it wrote — how that is written to a row and read back, and
the one way its status changes (through `CalendarStatus.check`). Columns it does not know are
kept as they were (`extra`), so a replace never drops what a newer version wrote. It never
reads or writes storage.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shared.models import CalendarStatus, FailureKind, iso, parse_iso, utc_now
from shared.storage import Lease

if TYPE_CHECKING:
    from shared.spaces import Space


@dataclass(frozen=True)
class ImportMark:
    """What one CSV import did to this calendar: the import (id and blob ETag), its action
    (`added` / `updated`) and the space it moved the calendar off, so a retry reports the same."""

    marker: str
    action: str
    previous_space_id: str = ""

    def columns(self) -> dict[str, str]:
        return {"import_marker": self.marker, "import_action": self.action,
                "import_previous_space_id": self.previous_space_id}

    @classmethod
    def from_columns(cls, entity: dict[str, Any]) -> ImportMark | None:
        if not entity.get("import_marker"):
            return None
        return cls(str(entity["import_marker"]), str(entity.get("import_action") or ""),
                   str(entity.get("import_previous_space_id") or ""))


_TEXT_FIELDS = (
    "status_reason", "space_id", "space_number", "space_name", "display_name", "mailbox_id",
    "subscription_id", "subscription_expires_at", "client_state_hash", "subscription_nonce", "next_attempt_at",
    "last_error", "last_notification_at", "added_at", "added_by", "updated_at",
)
_COLUMNS = {"PartitionKey", "RowKey", "status", "failure_kind", "attempts", "resync_needed", "reauthorize_requested",
            "_etag", "Timestamp", *_TEXT_FIELDS, *Lease.cleared(), "import_marker", "import_action",
            "import_previous_space_id"}


@dataclass
class Calendar:
    account_id: str
    email: str
    status: CalendarStatus = CalendarStatus.ADDED
    status_reason: str | None = None
    failure_kind: FailureKind | None = None
    space_id: str | None = None
    space_number: str | None = None
    space_name: str | None = None
    display_name: str | None = None
    mailbox_id: str | None = None
    subscription_id: str | None = None
    subscription_expires_at: str | None = None
    client_state_hash: str | None = None
    subscription_nonce: str | None = None
    attempts: int = 0
    next_attempt_at: str | None = None
    last_error: str | None = None
    last_notification_at: str | None = None
    resync_needed: bool = False
    reauthorize_requested: bool = False
    lease: Lease | None = None
    import_mark: ImportMark | None = None
    added_at: str | None = None
    added_by: str | None = None
    updated_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    etag: str | None = None

    def to_entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {
            **self.extra,
            "PartitionKey": self.account_id,
            "RowKey": self.email,
            "status": self.status.value,
            "failure_kind": self.failure_kind.value if self.failure_kind else "",
            "attempts": self.attempts,
            "resync_needed": self.resync_needed,
            "reauthorize_requested": self.reauthorize_requested,
            **(self.lease.columns() if self.lease else Lease.cleared()),
            **(self.import_mark.columns() if self.import_mark else {}),
            "_etag": self.etag,
        }
        for name in _TEXT_FIELDS:
            entity[name] = getattr(self, name) or ""
        return entity

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> Calendar:
        calendar = cls(
            account_id=entity["PartitionKey"],
            email=entity["RowKey"],
            status=CalendarStatus(entity.get("status") or "added"),
            failure_kind=FailureKind(entity["failure_kind"]) if entity.get("failure_kind") else None,
            attempts=int(entity.get("attempts") or 0),
            resync_needed=bool(entity.get("resync_needed")),
            reauthorize_requested=bool(entity.get("reauthorize_requested")),
            lease=Lease.from_columns(entity),
            import_mark=ImportMark.from_columns(entity),
            extra={k: v for k, v in entity.items() if k not in _COLUMNS},
            etag=entity.get("_etag"),
        )
        for name in _TEXT_FIELDS:
            setattr(calendar, name, entity.get(name) or None)
        return calendar

    def waiting_until(self, live_runs: Container[str] | None, now: datetime | None = None) -> str | None:
        """Until when the room waits for a run that is gone (killed midway): it is `connecting`
        under a live lease whose run is not among `live_runs`. None when unknown or not so."""
        if live_runs is None or self.status is not CalendarStatus.CONNECTING or self.lease is None:
            return None
        if not self.lease.is_live(now) or self.lease.owner in live_runs:
            return None
        return self.lease.expires_at

    def to_api(self, *, live_runs: Container[str] | None = None) -> dict[str, Any]:
        """What the page shows; given the ids of the connector runs alive now, a room left
        `connecting` by a run that is gone says so and until when (`waiting_until`)."""
        waiting_until = self.waiting_until(live_runs)
        expires = parse_iso(waiting_until)
        return {
            "email": self.email,
            "account_id": self.account_id,
            "status": self.status.value,
            "status_reason": f"waiting for an interrupted run (until {expires:%H:%M} UTC)" if expires
            else self.status_reason,
            "waiting_until": waiting_until,
            "failure_kind": self.failure_kind.value if self.failure_kind else None,
            "resync_needed": self.resync_needed,
            "space": {"id": self.space_id, "number": self.space_number, "name": self.space_name}
            if self.space_id else None,
            "display_name": self.display_name,
            "subscription_expires_at": self.subscription_expires_at,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at,
            "last_error": self.last_error,
            "last_notification_at": self.last_notification_at,
            "last_activity_at": max(filter(None, [self.updated_at, self.last_notification_at]), default=None),
            "added_at": self.added_at,
            "added_by": self.added_by,
        }

    def set_status(self, target: CalendarStatus, reason: str | None = None,
                   failure_kind: FailureKind | None = None) -> None:
        """The one way a calendar's status changes."""
        self.status = self.status.check(target)
        self.status_reason = reason
        self.failure_kind = failure_kind if target is CalendarStatus.FAILED else None
        self.updated_at = iso(utc_now())

    def link_to(self, space: Space | None) -> None:
        self.space_id = space.space_id if space else None
        self.space_number = space.number if space else None
        self.space_name = space.name if space else None
        self.updated_at = iso(utc_now())
