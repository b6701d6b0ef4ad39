"""A room's next bookings, as its sync summary shows them, worked out from what a round knows.

Owns which bookings those are — the first `SHOWN` that block the room (not cancelled, not shown
as free) and have not ended, by start (then end, then id), starting within `HORIZON` of the
round — and what the sync state keeps so that the next round can tell them without reading the
table again (`Upcoming`): the first `KEPT` such bookings starting before `until` (a reach longer
than the horizon), the moment that was true at, and whether those are all of them. A full round
knows every row; an incremental one knows the rows it named, and every other row is as it was,
so a booking missing from the kept list sorts after its last entry: the list stays exact while
at least `SHOWN` known entries come before that one. When that is not so (booked-out entries
ended or changed, the reach passed, the clock went back, or nothing kept yet) the round asks the
table, which answers exactly what the query of the shown horizon always answered. Moments
compare as the UTC text the table stores and queries with. It never reads or writes storage.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.bookings.model import Booking
from shared.models import iso

SHOWN = 3
HORIZON = timedelta(days=14)
# Kept beyond those shown, so one ending or changing rarely sends the next round to the table.
KEPT = 2 * SHOWN
# How far ahead the kept list accounts for every booking; past it (a day later) the table is asked.
REACH = HORIZON + timedelta(days=1)


def entry(booking: Booking) -> dict[str, Any]:
    """What the summary shows of a booking (its subject as the API shows it: `Private` when private)."""
    return {"id": booking.booking_id, "start": booking.start, "end": booking.end,
            "subject": booking.to_api()["subject"], "is_all_day": booking.is_all_day, "is_private": booking.is_private}


def _order(item: dict[str, Any]) -> tuple[str, str, str]:
    return item["start"], item["end"], item["id"]


def _ahead(bookings: Iterable[Booking], at: str, until: str) -> list[dict[str, Any]]:
    return [entry(b) for b in bookings if b.blocks_the_room and b.end > at and b.start < until]


@dataclass(frozen=True)
class Upcoming:
    at: str  # the moment (UTC text) this was true at: entries end after it
    until: str  # every booking starting before this is accounted for
    complete: bool  # the entries are all of them (else the first KEPT)
    entries: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, bookings: Iterable[Booking], now: datetime) -> Upcoming:
        """From every row of the calendar that could count (a full round's, or the table's answer for
        [now, now + REACH))."""
        at, until = iso(now) or "", iso(now + REACH) or ""
        found = sorted(_ahead(bookings, at, until), key=_order)
        return cls(at, until, len(found) <= KEPT, found[:KEPT])

    def after(self, named: Mapping[str, Booking | None], now: datetime) -> Upcoming | None:
        """What it is at `now` after an incremental round that left the rows it `named` as given (None:
        not in the table) and every other row as it was; None when only the table can tell."""
        at = iso(now) or ""
        if at < self.at or (iso(now + HORIZON) or "") > self.until:
            return None
        kept = [e for e in self.entries if e["id"] not in named and e["end"] > at]
        found = sorted(kept + _ahead((b for b in named.values() if b is not None), at, self.until), key=_order)
        if self.complete:
            return Upcoming(at, self.until, len(found) <= KEPT, found[:KEPT])
        if not self.entries:
            return None
        # A row not kept sorts after the last kept entry: what sorts up to it is known, the rest not.
        bound = _order(self.entries[-1])
        known = [e for e in found if _order(e) <= bound]
        if len(known) < SHOWN:
            return None
        return Upcoming(at, self.until, False, known[:KEPT])

    def shown(self) -> list[dict[str, Any]]:
        """The next bookings the summary shows: the first SHOWN starting within HORIZON of `at`."""
        horizon = iso(datetime.fromisoformat(self.at.replace("Z", "+00:00")) + HORIZON) or ""
        return [e for e in self.entries[:SHOWN] if e["start"] < horizon]

    def to_json(self) -> str:
        return json.dumps({"at": self.at, "until": self.until, "complete": self.complete, "entries": self.entries})

    @classmethod
    def from_json(cls, text: Any) -> Upcoming | None:
        """None for a state that kept none (written before it was kept) or anything unreadable."""
        try:
            data = json.loads(text) if isinstance(text, str) and text else None
            if not isinstance(data, dict):
                return None
            entries = [dict(e) for e in data["entries"]]
            if not all(isinstance(part, str) for e in entries for part in _order(e)):
                return None
            return cls(str(data["at"]), str(data["until"]), bool(data["complete"]), entries)
        except (ValueError, KeyError, TypeError):
            return None
