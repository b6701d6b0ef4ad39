"""The change feed: what happened to bookings, in order, so a consumer mirrors them without re-reading.

Owns the BookingChanges table (PartitionKey = the UTC day, RowKey = the moment in microseconds
and a random tail) and reading it from a cursor. A change is written before the booking row it
describes, so a crash between the two leaves a change the retry writes again (consumers apply
changes idempotently) and never a booking change nobody was told of. Writers on several
instances stamp rows a moment before they are committed, so a reader never returns rows younger
than `SETTLE_SECONDS`: the cursor never passes a row still on its way. Rows are kept
`RETENTION_DAYS`; an older cursor is `Gone`, and the consumer reads the bookings afresh.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.bookings.model import Booking
from shared.errors import Gone, Invalid
from shared.models import iso, utc_now
from shared.storage import GroupedWrites, Table, in_transactions

RETENTION_DAYS = 7
SETTLE_SECONDS = 5.0
MAX_PAGE = 500

UPSERTED, REMOVED, SPACE_RESET, CALENDAR_RESET = "upserted", "removed", "space_reset", "calendar_reset"


def _stamp(moment: datetime) -> str:
    return f"{int(moment.timestamp() * 1_000_000):017d}-{secrets.token_hex(4)}"


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def _moment_of(row_key: str) -> datetime:
    return datetime.fromtimestamp(int(row_key[:17]) / 1_000_000, tz=UTC)


class ChangeFeed:
    def __init__(self, table: Table) -> None:
        self.table = table
        # Every writer of a day writes its partition: rows of rounds running at once share transactions.
        self._writes = GroupedWrites(table)

    # --- writing ---------------------------------------------------------------------------

    def record(self, changes: Iterable[dict[str, Any]]) -> None:
        """Write changes (`change(...)` values), in transactions per day shared with the changes
        other threads record at the same moment (`GroupedWrites`); returns once they are stored."""
        now = utc_now()
        rows = [{"PartitionKey": _day(now), "RowKey": _stamp(now + timedelta(microseconds=index)), **change}
                for index, change in enumerate(changes)]
        self._writes.write([("upsert", row) for row in rows])

    # --- reading ---------------------------------------------------------------------------

    def page(self, cursor: str | None, limit: int = 100) -> dict[str, Any]:
        """Changes after `cursor` (from the start of what is kept without one), oldest first, and the
        cursor to ask with next. `more` says whether another page is ready now."""
        limit = max(1, min(limit, MAX_PAGE))
        now = utc_now()
        oldest = now - timedelta(days=RETENTION_DAYS)
        after = _decode(cursor) if cursor else _stamp(oldest)[:17]
        if cursor and _moment_of(after) < oldest:
            raise Gone("the cursor is older than the changes kept (7 days): read the bookings again and continue "
                       "with the cursor of a new first page")
        until = _stamp(now - timedelta(seconds=SETTLE_SECONDS))[:17]
        items: list[dict[str, Any]] = []
        day = _moment_of(after)
        last = after
        while day.date() <= now.date() and len(items) < limit:
            for entity in self.table.query_all("PartitionKey eq @day and RowKey gt @after and RowKey lt @until",
                                               parameters={"day": _day(day), "after": after, "until": until}):
                items.append(_item(entity))
                last = entity["RowKey"]
                if len(items) >= limit:
                    break
            day = (day + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        more = len(items) >= limit
        # Nothing found means everything up to `until` was read: the next page starts there.
        next_cursor = last if items else max(after, until)
        return {"items": items, "cursor": _encode(next_cursor), "more": more}

    def prune(self) -> int:
        """Delete days older than what is kept; returns how many rows."""
        cutoff = _day(utc_now() - timedelta(days=RETENTION_DAYS + 1))
        rows = list(self.table.query_all("PartitionKey lt @cutoff", parameters={"cutoff": cutoff},
                                         select=["PartitionKey", "RowKey"]))
        for batch in in_transactions(("delete", row) for row in rows):
            self.table.transact(batch)
        return len(rows)


def change(kind: str, account_id: str, email: str, space_id: str | None, booking: Booking | None = None,
           booking_id: str = "", reason: str = "") -> dict[str, Any]:
    """One change row's content: a booking written or removed, a space whose bookings all changed
    (`space_reset`: linked to another calendar, unlinked, its calendar removed, or a full round
    that changed many of them), or a calendar linked to no space whose full round changed many
    (`calendar_reset`: read that calendar's bookings again)."""
    return {"kind": kind, "account_id": account_id, "email": email, "space_id": space_id or "",
            "booking_id": booking.booking_id if booking else booking_id, "reason": reason,
            "booking": json.dumps(booking.to_api(space_id)) if booking is not None and kind == UPSERTED else ""}


def _item(entity: dict[str, Any]) -> dict[str, Any]:
    return {"kind": entity.get("kind"), "at": iso(_moment_of(entity["RowKey"])),
            "space_id": entity.get("space_id") or None, "booking_id": entity.get("booking_id") or None,
            "calendar": {"account_id": entity.get("account_id"), "email": entity.get("email")},
            "reason": entity.get("reason") or None,
            "booking": json.loads(entity["booking"]) if entity.get("booking") else None}


def _encode(stamp: str) -> str:
    return base64.urlsafe_b64encode(stamp.encode("ascii")).decode("ascii").rstrip("=")


def _decode(cursor: str) -> str:
    try:
        text = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode("ascii")).decode("ascii")
    except (ValueError, binascii.Error, UnicodeError):
        raise Invalid("the cursor is malformed; start without one") from None
    if len(text) < 17 or not text[:17].isdigit() or len(text) > 40:
        raise Invalid("the cursor is malformed; start without one")
    return text
