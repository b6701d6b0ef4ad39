"""Bookings: a connected room's calendar kept in the Bookings table, read by the workplace system.

Owns the booking model and its table, the change feed, each calendar's sync state, the delta
rounds, turning the changes queue into rounds, a room's next bookings, the bookings API, and
writing bookings back.
"""

from __future__ import annotations

from shared.bookings.feed import ChangeFeed
from shared.bookings.model import Booking, booking_from_event
from shared.bookings.rounds import DeltaRounds, sync_window
from shared.bookings.service import Bookings, parse_range
from shared.bookings.store import BookingStore
from shared.bookings.sync import BookingSync
from shared.bookings.sync_state import SyncState, SyncStates
from shared.bookings.writes import BookingWrites

__all__ = ["Booking", "BookingStore", "BookingSync", "BookingWrites", "Bookings", "ChangeFeed", "DeltaRounds",
           "SyncState", "SyncStates", "booking_from_event", "parse_range", "sync_window"]
