"""Booking a space from the workplace system: the event lands on the room's calendar exactly once, never double-booked.

Owns the order of a write. Under the room's lock (an ETag-guarded lock row with a lease, so two
requests on any instances take turns), the slot is checked against the room's calendar as it
is now — the synced store and a fresh calendarView of the slot, side by side — then the event
is created in Graph with a `transactionId` derived from the caller's `Idempotency-Key`, and the
booking is written to the change feed and the Bookings table at once (not only after the next
notification). Exactly once: the same key on the same room is the same transactionId, so a
retry after a lost answer returns the event the first try made, and a retried request finds
its own event in the slot and answers with it. The loser of a race gets `409` naming the
clashing booking. Only bookings this product created can be changed or cancelled through it.
A refusal by Graph becomes an error the caller and the admin can act on: access denied `502`
(and the room's sync state says so), throttled `503` with Retry-After.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.bookings.feed import REMOVED, UPSERTED, ChangeFeed, change
from shared.bookings.model import Booking, Unreadable, booking_from_event, calendar_partition
from shared.bookings.requests import BookingRequest, idempotency_key, parse_booking, transaction_id
from shared.bookings.rounds import sync_window
from shared.bookings.store import BookingStore
from shared.bookings.sync_state import SyncStates
from shared.calendars import Calendar, CalendarRepository
from shared.errors import ConcurrencyConflict, Conflict, NotFound, Unavailable, UpstreamError
from shared.graph import GraphClient, GraphError, IdentityUnavailable, TokenRefused
from shared.graph.events import calendar_view, create_event, delete_event, patch_event
from shared.identifiers import normalise_email
from shared.models import CalendarStatus, iso, utc_now
from shared.spaces import SpaceDirectory
from shared.storage import LockRows, Parallel

LOCK_PARTITION = "room"
# Long enough for a write and its reconciliation; a request that died holds the room no longer.
LOCK_LEASE = timedelta(seconds=60)
LOCK_WAIT_SECONDS = 20.0
WRITE_TIMEOUT_SECONDS = 10.0
# How often a create whose answer was lost is sent again (the transactionId makes it safe).
RECONCILE_TRIES = 2
# Throttling waited out inside a request before the caller is told to come back.
MAX_WAIT_SECONDS = 2.0
TEST_SUBJECT = "Connection test"
TEST_SLOT = timedelta(minutes=15)
TEST_HORIZON = timedelta(days=7)


class SlotTaken(Conflict):
    """The slot overlaps a booking that blocks the room; the clashing booking is named."""

    def __init__(self, clash: Booking, space_id: str | None) -> None:
        when = f"{clash.start} to {clash.end}"
        super().__init__(f"the room is booked from {when} ({clash.to_api()['subject']}): choose another time")
        self.clash = clash.to_api(space_id)


class BookingWrites:
    def __init__(self, *, graph: GraphClient, spaces: SpaceDirectory, calendars: CalendarRepository,
                 store: BookingStore, states: SyncStates, feed: ChangeFeed, locks: LockRows, parallel: Parallel,
                 max_hours: int, days_back: int, days_ahead: int) -> None:
        self.graph = graph
        self.spaces = spaces
        self.calendars = calendars
        self.store = store
        self.states = states
        self.feed = feed
        self.locks = locks
        self.parallel = parallel
        self.max_hours = max_hours
        self.days_back = days_back
        self.days_ahead = days_ahead
        self._refused: set[str] = set()

    # --- the API's doors --------------------------------------------------------------------

    def create(self, space_id: str, key: str | None, body: dict[str, Any]) -> dict[str, Any]:
        calendar = self._for_space(space_id)
        request = parse_booking(body, max_hours=self.max_hours, window=self._window())
        return self._create(calendar, idempotency_key(key), request).to_api(calendar.space_id)

    def change(self, space_id: str, booking_id: str, body: dict[str, Any]) -> dict[str, Any]:
        calendar = self._for_space(space_id)
        return self._change(calendar, self._own(calendar, booking_id), body).to_api(calendar.space_id)

    def cancel(self, space_id: str, booking_id: str) -> dict[str, Any]:
        calendar = self._for_space(space_id)
        return self._cancel(calendar, self._own(calendar, booking_id))

    def test_booking(self, account_id: str, email: str, actor: str) -> dict[str, Any]:
        """Book the next free 15 minutes on the room's calendar as "Connection test" (the page then
        watches it come back through sync, and cancels it)."""
        calendar = self._connected(self.calendars.get(account_id, normalise_email(email)))
        try:
            organizer = normalise_email(actor)
        except Exception:  # noqa: BLE001 - an application has no address: the room books for itself
            organizer = calendar.email
        start = _next_quarter(utc_now() + timedelta(minutes=1))
        horizon = start + TEST_HORIZON
        busy = [(b.start, b.end) for b in self.store.between(calendar.account_id, calendar.email, start, horizon)
                if b.blocks_the_room]
        key = f"test-{uuid.uuid4()}"
        while start + TEST_SLOT <= horizon:
            end = start + TEST_SLOT
            clash_end = max((e for s, e in busy if s < _text(end) and e > _text(start)), default=None)
            if clash_end is not None:
                start = max(end, _next_quarter(_parse(clash_end)))
                continue
            try:
                booking = self._create(calendar, key, BookingRequest(start, end, TEST_SUBJECT, TEST_SUBJECT,
                                                                     organizer))
            except SlotTaken as taken:  # the store had not seen it yet; Graph's view of the slot had
                busy.append((taken.clash["start"], taken.clash["end"]))
                continue
            self._write_error(calendar, "", known=False)
            return booking.to_api(calendar.space_id)
        raise Conflict("the room has no free 15 minutes in the next 7 days for a connection test")

    def cancel_on_calendar(self, account_id: str, email: str, booking_id: str) -> dict[str, Any]:
        calendar = self._connected(self.calendars.get(account_id, normalise_email(email)))
        return self._cancel(calendar, self._own(calendar, booking_id))

    # --- which room ---------------------------------------------------------------------------

    def _for_space(self, space_id: str) -> Calendar:
        space = self.spaces.get(space_id)
        calendar = (self.calendars.find(space.linked_account_id, space.linked_email)
                    if space.linked_account_id and space.linked_email else None)
        if calendar is None or calendar.space_id != space.space_id:
            raise Conflict(f"space {space.label} is not linked to a room calendar: link it before booking it")
        return self._connected(calendar)

    @staticmethod
    def _connected(calendar: Calendar) -> Calendar:
        if calendar.status is not CalendarStatus.CONNECTED:
            raise Conflict(f"the room calendar {calendar.email} is {calendar.status.value}, not connected: "
                           "bookings can be written once it is")
        return calendar

    def _own(self, calendar: Calendar, booking_id: str) -> Booking:
        booking = self.store.get(calendar.account_id, calendar.email, booking_id) if booking_id else None
        if booking is None:
            raise NotFound(f"the room has no booking {booking_id[:80]!r}")
        if not booking.created_by_connector:
            who = booking.organizer_name or booking.organizer_email or "its organizer"
            raise Conflict(f"this booking was made in Outlook by {who}: only bookings made through this API can "
                           "be changed or cancelled here")
        return booking

    def _window(self) -> tuple[datetime, datetime]:
        return sync_window(utc_now(), self.days_back, self.days_ahead)

    # --- writing ----------------------------------------------------------------------------

    def _create(self, calendar: Calendar, key: str, request: BookingRequest) -> Booking:
        transaction = transaction_id(calendar_partition(calendar.account_id, calendar.email), key)
        with self._room(calendar):
            clash, mine = self._look(calendar, request.start, request.end, transaction)
            if mine is not None:
                return mine  # this very request made it before: answer with it again
            if clash is not None:
                raise SlotTaken(clash, calendar.space_id)
            event = self._post(calendar, {
                "subject": request.subject, "transactionId": transaction, "showAs": "busy", "isReminderOn": False,
                "start": _graph_time(request.start), "end": _graph_time(request.end),
                "body": {"contentType": "text",
                         "content": f"Booked by {request.organizer_name or request.organizer_email} "
                                    f"<{request.organizer_email}> in the workplace system."},
                "location": {"displayName": calendar.display_name or calendar.email},
            })
            booking = self._booking(calendar, event, request)
            if (booking.start, booking.end) != (_text(request.start), _text(request.end)):
                raise Conflict("this Idempotency-Key was used for another booking of this room: use a new key "
                               "for a new booking")
            self.feed.record([change(UPSERTED, calendar.account_id, calendar.email, calendar.space_id,
                                     booking=booking)])
            self.store.add(booking)
            self._write_error(calendar, "")
            return booking

    def _change(self, calendar: Calendar, booking: Booking, body: dict[str, Any]) -> Booking:
        current = BookingRequest(_parse(booking.start), _parse(booking.end), booking.subject or "",
                                 booking.booked_by_name, booking.booked_by_email)
        request = parse_booking(body, max_hours=self.max_hours, window=self._window(), partial=True, current=current)
        with self._room(calendar):
            clash, _ = self._look(calendar, request.start, request.end, booking.transaction_id,
                                  ignore=booking.booking_id)
            if clash is not None:
                raise SlotTaken(clash, calendar.space_id)
            event = self._send(calendar, lambda: patch_event(
                self.graph, calendar.account_id, calendar.mailbox_id or calendar.email, booking.booking_id,
                {"subject": request.subject, "start": _graph_time(request.start), "end": _graph_time(request.end)},
                max_wait_seconds=MAX_WAIT_SECONDS, timeout_seconds=WRITE_TIMEOUT_SECONDS), retries=1)
            changed = self._booking(calendar, event, request)
            self.feed.record([change(UPSERTED, calendar.account_id, calendar.email, calendar.space_id,
                                     booking=changed)])
            self.store.write([changed], [])
            return changed

    def _cancel(self, calendar: Calendar, booking: Booking) -> dict[str, Any]:
        self._send(calendar, lambda: delete_event(
            self.graph, calendar.account_id, calendar.mailbox_id or calendar.email, booking.booking_id,
            max_wait_seconds=MAX_WAIT_SECONDS, timeout_seconds=WRITE_TIMEOUT_SECONDS), retries=1)
        self.feed.record([change(REMOVED, calendar.account_id, calendar.email, calendar.space_id, booking=booking,
                                 reason="cancelled through the bookings API")])
        self.store.remove(booking)
        return {"cancelled": booking.booking_id, "space_id": calendar.space_id}

    def _room(self, calendar: Calendar) -> Any:
        return self.locks.held(LOCK_PARTITION, calendar_partition(calendar.account_id, calendar.email),
                               uuid.uuid4().hex[:12], LOCK_LEASE, wait_seconds=LOCK_WAIT_SECONDS)

    def _look(self, calendar: Calendar, start: datetime, end: datetime, transaction: str,
              ignore: str = "") -> tuple[Booking | None, Booking | None]:
        """(a booking that clashes with [start, end), the booking `transaction` already made), from the
        synced store and Graph's view of the slot as it is now, read side by side."""
        stored, seen = self.parallel.run([
            lambda: self.store.between(calendar.account_id, calendar.email, start, end),
            lambda: self._send(calendar, lambda: calendar_view(
                self.graph, calendar.account_id, calendar.mailbox_id or calendar.email, start, end,
                max_wait_seconds=MAX_WAIT_SECONDS, timeout_seconds=WRITE_TIMEOUT_SECONDS), retries=1),
        ])
        current = list(stored)
        for event in seen:
            try:
                current.append(booking_from_event(event, calendar.account_id, calendar.email))
            except Unreadable:
                continue
        mine = next((b for b in current if b.transaction_id == transaction and b.booking_id != ignore), None)
        if mine is not None:
            return None, self.store.get(calendar.account_id, calendar.email, mine.booking_id) or mine
        clash = next((b for b in current if b.blocks_the_room and b.booking_id != ignore
                      and b.start < _text(end) and b.end > _text(start)), None)
        return clash, None

    def _post(self, calendar: Calendar, event: dict[str, Any]) -> dict[str, Any]:
        """Create the event; an answer lost on the way (a timeout after Graph may have committed) is
        asked for again with the same transactionId, which returns the event already made."""
        return self._send(calendar, lambda: create_event(
            self.graph, calendar.account_id, calendar.mailbox_id or calendar.email, event,
            max_wait_seconds=MAX_WAIT_SECONDS, timeout_seconds=WRITE_TIMEOUT_SECONDS), retries=RECONCILE_TRIES)

    def _send(self, calendar: Calendar, call: Any, *, retries: int) -> Any:
        """One Graph call of a write, with what its refusals mean for the caller."""
        for attempt in range(retries + 1):
            try:
                return call()
            except GraphError as error:
                if error.status == 0 and attempt < retries:
                    continue  # no answer: the same request again is safe (transactionId, PATCH, DELETE)
                raise self._refusal(calendar, error) from None
            except TokenRefused as refused:
                raise UpstreamError(f"the tenant refused the app's token ({refused.message}): re-authenticate "
                                    "the account") from None
            except IdentityUnavailable as error:
                raise Unavailable(error.message, retry_after=30) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _refusal(self, calendar: Calendar, error: GraphError) -> Exception:
        if error.status == 0:
            return Unavailable("Microsoft Graph did not answer; send the same request again with the same "
                               "Idempotency-Key: it never books twice", retry_after=5)
        if error.is_transient:
            wait = error.retry_after if error.retry_after is not None else 5.0
            return Unavailable(f"Microsoft Graph is throttling this room; try again in {wait:.0f} s", retry_after=wait)
        if error.status == 403:
            reason = (f"the room's calendar refused the booking: access to {calendar.email} is denied by the "
                      "tenant's application access policy or RBAC scope (Calendars.ReadWrite is needed for this "
                      f"room; {error.graph_code}); ask the Exchange admin to grant the app write access to it")
            self._write_error(calendar, reason)
            return UpstreamError(reason)
        if error.status == 404:
            return UpstreamError(f"Microsoft Graph has no such event or mailbox for {calendar.email} "
                                 f"({error.graph_code})")
        return UpstreamError(f"Microsoft Graph refused the booking ({error.status} {error.graph_code}: "
                             f"{error.message[:200]})")

    def _booking(self, calendar: Calendar, event: dict[str, Any], request: BookingRequest) -> Booking:
        try:
            booking = booking_from_event(event, calendar.account_id, calendar.email)
        except Unreadable as reason:
            raise UpstreamError(f"Microsoft Graph answered with an event this product cannot read ({reason})") \
                from None
        return replace(booking, booked_by_name=request.organizer_name, booked_by_email=request.organizer_email,
                       seen_by_sync=False)

    def _write_error(self, calendar: Calendar, reason: str, *, known: bool = True) -> None:
        """Keep (or clear) why writes to this room are refused, where the page shows the room's sync.
        A write that succeeds clears what this process noted without reading the state first; with
        `known=False` (the page's connection test) it reads, so a refusal another instance noted is
        cleared too."""
        key = calendar_partition(calendar.account_id, calendar.email)
        if not reason and known and key not in self._refused:
            return
        if reason:
            self._refused.add(key)
        else:
            self._refused.discard(key)
        for _ in range(3):
            state = self.states.get(calendar.account_id, calendar.email)
            if state.write_error == reason:
                return
            state.write_error, state.write_error_at = reason, (iso(utc_now()) or "") if reason else ""
            try:
                self.states.save(state)
                return
            except (Conflict, ConcurrencyConflict):
                continue


def _next_quarter(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC).replace(second=0, microsecond=0)
    return moment + timedelta(minutes=(-moment.minute) % 15)


def _graph_time(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


def _text(moment: datetime) -> str:
    return iso(moment) or ""


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
