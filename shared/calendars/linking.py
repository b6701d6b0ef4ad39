"""Linking a calendar to a space: one space has at most one calendar, one calendar at most one space.

Owns the order of the two writes and what makes it safe. The space side is claimed first
(`SpaceDirectory.claim`, ETag-guarded on the space's index row), then the calendar is written
If-Match; if that loses, the claim is released. So a race never leaves two links, and a crash
between the writes leaves at worst a claim whose calendar does not point back, which the next
link attempt repairs once it is older than any link in progress could be. It never changes a
calendar's status.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from shared.calendars.model import Calendar
from shared.calendars.repository import CalendarRepository
from shared.errors import ConcurrencyConflict, Invalid
from shared.models import parse_iso, utc_now
from shared.spaces import Space, SpaceDirectory, SpaceTaken

log = logging.getLogger("rcc.calendars")

# A claim on a space whose calendar does not point back is a leftover of a crash only once
# it is older than any link in progress (claim, then one calendar write) could take.
STALE_CLAIM_AGE = timedelta(minutes=2)


class SpaceLinks:
    def __init__(self, spaces: SpaceDirectory, calendars: CalendarRepository) -> None:
        self.spaces = spaces
        self.calendars = calendars

    def resolve(self, space_ref: Any) -> Space:
        if not isinstance(space_ref, str) or not space_ref.strip():
            raise Invalid("name the space by its number or id")
        return self.spaces.resolve(space_ref.strip())

    def claim(self, space: Space, account_id: str, email: str) -> Space:
        """Claim the space for the calendar. A claim left by a crash — its holder does not point
        back, and it is older than any link in progress could be — is repaired once; a fresh
        one is never taken over, so two links cannot both win."""
        try:
            return self.spaces.claim(space.space_id, account_id, email)
        except SpaceTaken as taken:
            if (taken.holder_account_id, taken.holder_email) == (account_id, email):
                raise
            holder = self.calendars.find(taken.holder_account_id, taken.holder_email)
            if holder is not None and holder.space_id == space.space_id:
                raise
            claimed_at = parse_iso(taken.space.linked_at)
            if claimed_at is None or utc_now() - claimed_at < STALE_CLAIM_AGE:
                raise
            log.warning("repairing a stale claim of space %s by %s", space.space_id, taken.holder_email)
            self.spaces.release(space.space_id, taken.holder_account_id, taken.holder_email)
            return self.spaces.claim(space.space_id, account_id, email)

    def release(self, space_id: str, account_id: str, email: str) -> None:
        self.spaces.release(space_id, account_id, email)

    def link(self, calendar: Calendar, space: Space) -> Space:
        """Claim `space`, then save the calendar pointing at it, then free the space it had."""
        claimed = self.claim(space, calendar.account_id, calendar.email)
        previous_space_id = calendar.space_id
        calendar.link_to(claimed)
        try:
            self.calendars.save(calendar)
        except ConcurrencyConflict:
            self.release(claimed.space_id, calendar.account_id, calendar.email)
            raise ConcurrencyConflict(f"{calendar.email} was changed by someone else meanwhile; try again") from None
        if previous_space_id:
            self.release(previous_space_id, calendar.account_id, calendar.email)
        return claimed

    def unlink(self, calendar: Calendar) -> None:
        """Save the calendar pointing nowhere, then free its space."""
        space_id = calendar.space_id
        if not space_id:
            return
        calendar.link_to(None)
        self.calendars.save(calendar)
        self.release(space_id, calendar.account_id, calendar.email)
