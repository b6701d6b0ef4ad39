"""What the workplace system and the admin read of bookings, and what calendar changes do to them.

Owns the bookings API: a space's bookings in a range (through the calendar it is linked to), a
calendar's, the change feed, the sync summary the page shows per calendar; and keeping bookings
from outliving their calendar: removing a calendar removes its bookings and sync state, and
linking, unlinking or removing tells the feed the space's bookings changed as a whole
(`space_reset`: a consumer reads that space again). It never calls Graph.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shared.accounts import AccountRepository
from shared.bookings.feed import SPACE_RESET, ChangeFeed, change
from shared.bookings.store import BookingStore
from shared.bookings.sync_state import SyncStates
from shared.calendars import Calendar, CalendarHooks, CalendarRepository
from shared.errors import Conflict, Invalid
from shared.identifiers import normalise_email
from shared.models import iso, utc_now
from shared.spaces import SpaceDirectory

DEFAULT_RANGE = timedelta(days=7)
MAX_RANGE = timedelta(days=366)


def parse_range(start: str | None, end: str | None, now: datetime | None = None) -> tuple[datetime, datetime]:
    """[start, end) from ISO 8601 text with an offset (or Z); from now and a week long when left out."""
    begin = _moment(start, "start") if start else (now or utc_now())
    finish = _moment(end, "end") if end else begin + DEFAULT_RANGE
    if finish <= begin:
        raise Invalid("end must be after start")
    if finish - begin > MAX_RANGE:
        raise Invalid("ask for at most 366 days at a time")
    return begin, finish


def _moment(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise Invalid(f"{name} must be an ISO 8601 moment such as 2026-12-01T09:00:00Z") from None
    if moment.tzinfo is None:
        raise Invalid(f"{name} needs an offset (Z or +01:00): a moment without one is ambiguous")
    return moment


class Bookings(CalendarHooks):
    """Also the calendars' hooks: what removing and relinking a calendar does to its bookings."""

    def __init__(self, *, store: BookingStore, states: SyncStates, feed: ChangeFeed, spaces: SpaceDirectory,
                 calendars: CalendarRepository, accounts: AccountRepository) -> None:
        self.store = store
        self.states = states
        self.feed = feed
        self.spaces = spaces
        self.calendars = calendars
        self.accounts = accounts

    # --- reading ---------------------------------------------------------------------------

    def for_space(self, space_id: str, start: str | None, end: str | None) -> dict[str, Any]:
        space = self.spaces.get(space_id)
        if not space.linked_account_id or not space.linked_email:
            raise Conflict(f"space {space.label} is not linked to a room calendar, so it has no bookings here")
        calendar = self.calendars.find(space.linked_account_id, space.linked_email)
        if calendar is None or calendar.space_id != space.space_id:
            raise Conflict(f"space {space.label} is not linked to a room calendar, so it has no bookings here")
        return self._range(calendar, space.space_id, start, end)

    def for_calendar(self, account_id: str, email: str, start: str | None, end: str | None) -> dict[str, Any]:
        self.accounts.get(account_id)
        calendar = self.calendars.get(account_id, normalise_email(email))
        return self._range(calendar, calendar.space_id, start, end)

    def _range(self, calendar: Calendar, space_id: str | None, start: str | None, end: str | None) -> dict[str, Any]:
        begin, finish = parse_range(start, end)
        state = self.states.get(calendar.account_id, calendar.email)
        items = self.store.between(calendar.account_id, calendar.email, begin, finish)
        return {"items": [booking.to_api(space_id) for booking in items], "start": iso(begin), "end": iso(finish),
                "synced_at": state.last_synced_at or None,
                "window": {"start": state.window_start, "end": state.window_end} if state.window_start else None,
                "sync": state.summary() if state.etag else None}

    def changes(self, cursor: str | None, limit: int) -> dict[str, Any]:
        return self.feed.page(cursor, limit)

    def summaries(self, account_id: str, calendars: list[Calendar]) -> dict[str, dict[str, Any]]:
        """The sync summary of each connected calendar among these (the rest have none)."""
        emails = [c.email for c in calendars if c.subscription_id]
        states = self.states.of_calendars(account_id, emails) if emails else {}
        now = utc_now()
        return {email: state.summary(now) for email, state in states.items()}

    # --- what calendar changes do to bookings ----------------------------------------------

    def removed(self, calendar: Calendar) -> None:
        """Its sync state and bookings go; the feed says its space's bookings changed. Repeatable. The
        state first: a round still running fails to save it and removes what it wrote after this
        removal's; one that saved before wrote nothing this removal misses (`sync.BookingSync`)."""
        if calendar.space_id:
            self.feed.record([change(SPACE_RESET, calendar.account_id, calendar.email, calendar.space_id,
                                     reason="the space's calendar was removed")])
        self.states.delete(calendar.account_id, calendar.email)
        self.store.remove_calendar(calendar.account_id, calendar.email)

    def relinked(self, calendar: Calendar, previous_space_id: str | None) -> None:
        """The calendar now serves another space (or none): both spaces' bookings changed as a whole."""
        resets = [(space_id, reason) for space_id, reason in (
            (previous_space_id, "the space was unlinked from its calendar"),
            (calendar.space_id, "the space was linked to a calendar")) if space_id]
        self.feed.record([change(SPACE_RESET, calendar.account_id, calendar.email, space_id, reason=reason)
                          for space_id, reason in resets])
