"""One delta round of one room calendar: Graph's state of the window, made the Bookings table's.

Owns what a round writes. An incremental round starts from the stored deltaLink and applies
what Graph says changed; a full round (no link, a new window, a `410`, a missed notification,
a new subscription, the daily safety round) lists the whole window and also removes what is no
longer on the calendar. A notification only says "look again": the truth is the round. For each
page: the stored rows of its events are read, what differs is written to the change feed first
and then to the table; an unchanged occurrence writes nothing. A full round that changes more
than `RESET_ABOVE` bookings tells the feed so once (`space_reset`: read the space again; a
calendar linked to no space, `calendar_reset`) instead of each change (`_FullRoundTelling`).
A round killed midway leaves the deltaLink where it was, so the next round redoes it; keys
make that harmless (rows keyed by event id: never a double, never a loss). It never decides
when a round runs (`sync` does).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from shared.bookings.feed import CALENDAR_RESET, REMOVED, SETTLE_SECONDS, SPACE_RESET, UPSERTED, ChangeFeed, change
from shared.bookings.model import Booking, Unreadable, booking_from_event
from shared.bookings.store import BookingStore
from shared.calendars import Calendar
from shared.graph import GraphClient
from shared.graph.events import DeltaExpired, DeltaPage, delta_pages

log = logging.getLogger("rcc.sync")

# A full round changing more bookings than this tells the feed once (a reset), not each.
RESET_ABOVE = 10
# Why a removal is told: what each kind of round saw.
REMOVED_FROM_CALENDAR = "removed from the calendar"
NO_LONGER_IN_WINDOW = "no longer on the calendar in the window"


def sync_window(now: datetime, days_back: int, days_ahead: int) -> tuple[datetime, datetime]:
    """The window kept: from the start of the UTC day `days_back` ago to the start of the day
    `days_ahead` from today. It moves once a day, which makes the next round a full one."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days_back), today + timedelta(days=days_ahead)


@dataclass
class RoundResult:
    full: bool
    delta_link: str
    bookings: int | None  # how many the window holds (a full round counts them; None: unchanged count)
    added: int = 0
    removed: int = 0
    changed: int = 0
    skipped: int = 0
    # The calendar's rows as the round left them, by booking id: a full round's are all of them; an
    # incremental round's are those its pages named (None: not in the table), the rest untouched.
    rows: dict[str, Booking | None] = field(default_factory=dict)


class DeltaRounds:
    def __init__(self, *, graph: GraphClient, store: BookingStore, feed: ChangeFeed,
                 max_wait_seconds: float) -> None:
        self.graph = graph
        self.store = store
        self.feed = feed
        self.max_wait_seconds = max_wait_seconds

    def run(self, calendar: Calendar, *, link: str | None, window: tuple[datetime, datetime],
            renew: Callable[[], None]) -> RoundResult:
        """Incremental from `link`, full without one; a link Graph no longer knows means full."""
        if link:
            try:
                return self._incremental(calendar, link, renew)
            except DeltaExpired:
                log.info("the delta link of %s expired: a full round", calendar.email)
        return self._full(calendar, window, renew)

    def _pages(self, calendar: Calendar, *, link: str | None = None,
               window: tuple[datetime, datetime] | None = None) -> Iterator[DeltaPage]:
        return delta_pages(self.graph, calendar.account_id, calendar.mailbox_id or calendar.email, link=link,
                           window=window, max_wait_seconds=self.max_wait_seconds)

    def _incremental(self, calendar: Calendar, link: str, renew: Callable[[], None]) -> RoundResult:
        result = RoundResult(full=False, delta_link=link, bookings=None)
        for page in self._pages(calendar, link=link):
            named = [*page.removed, *(e["id"] for e in page.events)]
            stored = self.store.find_many(calendar.account_id, calendar.email, named)
            upserts = self._read(calendar, page, stored, result)
            removals = [stored[booking_id] for booking_id in page.removed if booking_id in stored]
            self._write(calendar, upserts, removals, REMOVED_FROM_CALENDAR)
            result.rows.update({booking_id: stored.get(booking_id) for booking_id in named})
            result.rows.update({booking.booking_id: booking for booking in upserts})
            result.rows.update(dict.fromkeys(page.removed))
            result.removed += len(removals)
            result.delta_link = page.delta_link or result.delta_link
            renew()
        return result

    def _full(self, calendar: Calendar, window: tuple[datetime, datetime], renew: Callable[[], None]) -> RoundResult:
        existing = {booking.booking_id: booking for booking in self.store.of_calendar(calendar.account_id,
                                                                                    calendar.email)}
        result = RoundResult(full=True, delta_link="", bookings=0, rows=dict(existing))
        seen: set[str] = set()
        telling = _FullRoundTelling(self, calendar)
        for page in self._pages(calendar, window=window):
            upserts = self._read(calendar, page, existing, result)
            seen.update(event["id"] for event in page.events)
            telling.write(upserts, [])
            result.rows.update({booking.booking_id: booking for booking in upserts})
            result.delta_link = page.delta_link or result.delta_link
            renew()
        removals = [booking for booking_id, booking in existing.items() if booking_id not in seen]
        telling.write([], removals, last=True)
        for booking in removals:
            del result.rows[booking.booking_id]
        result.removed = len(removals)
        result.bookings = len(seen) - result.skipped
        return result

    def _read(self, calendar: Calendar, page: DeltaPage, stored: dict[str, Booking],
              result: RoundResult) -> list[Booking]:
        """The page's events that differ from what is stored."""
        upserts: list[Booking] = []
        for event in page.events:
            try:
                booking = booking_from_event(event, calendar.account_id, calendar.email)
            except Unreadable as reason:
                result.skipped += 1
                log.warning("skipped an event of %s: %s", calendar.email, reason)
                continue
            previous = stored.get(booking.booking_id)
            if previous is not None and previous.booked_by_email:
                # Who booked it through the API is ours to keep; Graph only knows the room organised it.
                booking = replace(booking, booked_by_name=previous.booked_by_name,
                                  booked_by_email=previous.booked_by_email)
            if booking.same_as(previous):
                continue
            if previous is None:
                result.added += 1
            else:
                result.changed += 1
            upserts.append(booking)
        return upserts

    def _write(self, calendar: Calendar, upserts: list[Booking], removals: list[Booking], removed_because: str, *,
               tell: bool = True) -> None:
        """Store what changed; unless `tell` is False (a reset stands for it), tell the feed first: a
        crash between the two leaves a change told twice, never one untold. The changes are made
        only here, so a round a reset stands for never builds them."""
        if tell and (upserts or removals):
            self.feed.record([change(UPSERTED, calendar.account_id, calendar.email, calendar.space_id, booking=b)
                              for b in upserts] +
                             [change(REMOVED, calendar.account_id, calendar.email, calendar.space_id, booking=b,
                                     reason=removed_because) for b in removals])
        if upserts or removals:
            self.store.write(upserts, removals)


class _FullRoundTelling:
    """How a full round tells the feed what it changes: each change while there are at most
    `RESET_ABOVE` of them (held, with their rows, until the round ends or passes that); past it one
    reset, recorded before any row it stands for, and the rows with no change each: a
    `space_reset` for the room's space, or a `calendar_reset` for a calendar linked to no space
    (whose bookings only the admin's calendar API lists). Consumers then read the space or the
    calendar again with one request instead of applying each change. A reader sees the reset
    once it is `SETTLE_SECONDS` old; a round still writing by then records a second one after
    its last row, so a read on the first misses nothing."""

    def __init__(self, rounds: DeltaRounds, calendar: Calendar) -> None:
        self.rounds = rounds
        self.calendar = calendar
        self.upserts: list[Booking] = []
        self.removals: list[Booking] = []
        self.reset_at: float | None = None  # when the reset was recorded (monotonic)

    def write(self, upserts: list[Booking], removals: list[Booking], *, last: bool = False) -> None:
        if self.reset_at is not None:
            self.rounds._write(self.calendar, upserts, removals, NO_LONGER_IN_WINDOW, tell=False)
        else:
            self.upserts += upserts
            self.removals += removals
            if len(self.upserts) + len(self.removals) > RESET_ABOVE:
                self._reset(f"a full read of the calendar changed more than {RESET_ABOVE} bookings")
                self.rounds._write(self.calendar, self.upserts, self.removals, NO_LONGER_IN_WINDOW, tell=False)
                self.upserts, self.removals = [], []
            elif last:
                self.rounds._write(self.calendar, self.upserts, self.removals, NO_LONGER_IN_WINDOW)
        if last and self.reset_at is not None and time.monotonic() - self.reset_at > SETTLE_SECONDS / 2:
            self._reset("the full read of the calendar went on after the first reset could be read")

    def _reset(self, why: str) -> None:
        space_id = self.calendar.space_id
        kind, again = (SPACE_RESET, "read the space again") if space_id else (CALENDAR_RESET, "read the calendar again")
        self.rounds.feed.record([change(kind, self.calendar.account_id, self.calendar.email, space_id,
                                        reason=f"{why}: {again}")])
        self.reset_at = time.monotonic()
