"""Booking sync: turning the `calendar-changes` queue into delta rounds, coalesced per room.

Owns when a round runs. A message says "this room may have changed" (a change notification,
`missed`, or a resync the connector, the consent flow or the daily sweep asks for); it never
carries the change. Many messages for one room become one round: a message received before
a round began is covered by it and dropped without a Graph call (a message asking for full
rounds may name several rooms of an account: their states and calendars are read with one
query each, and each room is judged and run side by side); one received while a round runs
comes back shortly (a delayed copy), by when the next round covers it. The round holds a
lease on the room's sync state, so one round per room runs at a time on any instance, and a
killed round's lease expires and the message's next delivery runs it again. Throttling (429,
5xx) puts the message back until Retry-After; a refusal an admin must fix (access denied,
mailbox gone) is recorded on the sync state and the message is done; anything else raises, so
the host retries and, after the last try, moves the message to the poison queue — the last try
records the error first, so the page shows it. A message is judged by the room's sync state
before its calendar is read, so one already covered costs one read; a round ends by saving that
state If-Match, and a save that finds the row gone means the calendar was removed meanwhile
(removing it deletes the state before the bookings), so the round removes what it wrote.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from azure.storage.queue import QueueClient

from shared.accounts import AccountRepository
from shared.bookings.feed import ChangeFeed
from shared.bookings.rounds import DeltaRounds, RoundResult, sync_window
from shared.bookings.store import BookingStore
from shared.bookings.sync_state import SyncState, SyncStates
from shared.bookings.upcoming import REACH, Upcoming
from shared.calendars import Calendar, CalendarRepository
from shared.errors import ConcurrencyConflict, Conflict
from shared.graph import GraphError, IdentityUnavailable, TokenRefused
from shared.models import AccountStatus, CalendarStatus, iso, iso_precise, parse_iso, utc_now
from shared.storage import Lease, Parallel

log = logging.getLogger("rcc.sync")

# One round's lease; renewed with every page, so only a round that died holds it this long.
ROUND_LEASE = timedelta(seconds=30)
# A message received this close to a round's start may have been sent for a change the round
# did not see (clocks of two instances differ): it is covered only by a round that began later.
CLOCK_MARGIN = timedelta(seconds=2)
# How long a message waits to come back while the room's round runs.
FOLLOW_UP_SECONDS = 2
MAX_FOLLOW_UPS = 60
# The host's maxDequeueCount (host.json): the last delivery before the poison queue.
LAST_DELIVERY = 5
# A full round at least this often, even when nothing was announced.
SAFETY_ROUND = timedelta(hours=24)

FULL_KINDS = {"missed", "resync"}
# Rooms named by one message asking for full rounds (a connector run's new rooms, the sweep).
ROOMS_PER_MESSAGE = 8


class BookingSync:
    def __init__(self, *, accounts: AccountRepository, calendars: CalendarRepository, states: SyncStates,
                 store: BookingStore, feed: ChangeFeed, rounds: DeltaRounds, queue: QueueClient, parallel: Parallel,
                 days_back: int, days_ahead: int, round_pool: Parallel | None = None) -> None:
        self.accounts = accounts
        self.feed = feed
        self.calendars = calendars
        self.states = states
        self.store = store
        self.rounds = rounds
        self.queue = queue
        self.parallel = parallel
        # Where the rooms of one message run side by side (None: in turn). Not `parallel`: a round
        # waits on that pool's requests, and a pool whose threads wait on their own pool stalls.
        self.round_pool = round_pool
        self.days_back = days_back
        self.days_ahead = days_ahead

    # --- asking for rounds -----------------------------------------------------------------

    def request_resync(self, calendars: Iterable[Calendar], reason: str) -> int:
        """A full round for each calendar: one message per ROOMS_PER_MESSAGE rooms of an account (a
        connector run or the sweep asks for thousands; a send costs what a round's read does), sent
        side by side. Returns how many rooms were asked for."""
        now = iso(utc_now())
        by_account: dict[str, list[str]] = {}
        for calendar in calendars:
            by_account.setdefault(calendar.account_id, []).append(calendar.email)
        messages = [json.dumps({"account_id": account_id, "room_email": emails[start],
                                "rooms": emails[start:start + ROOMS_PER_MESSAGE], "change_type": "resync",
                                "reason": reason, "received_at": now})
                    for account_id, emails in by_account.items()
                    for start in range(0, len(emails), ROOMS_PER_MESSAGE)]
        self.parallel.run([lambda message=message: self.queue.send_message(message) for message in messages])
        return sum(len(emails) for emails in by_account.values())

    def request_account_resync(self, account_id: str, reason: str) -> int:
        return self.request_resync(self.calendars.in_status(account_id, CalendarStatus.CONNECTED), reason)

    # --- one message -----------------------------------------------------------------------

    def handle(self, body: bytes | str, dequeue_count: int = 1) -> str:
        """Do what one message asks; returns what happened (for the log). What raises is retried by
        the host; the last delivery before the poison queue leaves its reason on the sync state."""
        try:
            return self._handle(body)
        except Exception as error:
            if dequeue_count >= LAST_DELIVERY:
                self._record_poison(body, error)
            raise

    def _record_poison(self, body: bytes | str, error: Exception) -> None:
        message = _parse(body)
        if message is None:
            return
        try:
            state = self.states.get(message["account_id"], message["room_email"])
            self._release(state, error=f"a change could not be synced after {LAST_DELIVERY} tries "
                                       f"({type(error).__name__}); it is in the calendar-changes-poison queue, and "
                                       "the next change or the daily round reads the calendar again")
        except Exception:  # noqa: BLE001 - the message still goes to the poison queue; the log has both
            log.exception("could not record the sync error of %s", message["room_email"])

    def _handle(self, body: bytes | str) -> str:
        message = _parse(body)
        if message is None:
            log.warning("dropped a calendar-changes message that is not one of ours")
            return "dropped: unreadable"
        rooms = message.pop("rooms", None)
        if isinstance(rooms, list) and len(rooms) > 1:
            return self._each_room(message, rooms)
        return self._handle_message(message)

    def _each_room(self, message: dict[str, Any], rooms: list[Any]) -> str:
        """A message naming several rooms of one account (asked for together): their sync states and
        calendars read with one query each, then each room's round, side by side on the round pool.
        A room whose round raised gets a message of its own, so its retries and poison record are
        its own."""
        emails = list(dict.fromkeys(room for room in rooms if isinstance(room, str) and room))
        account_id = message["account_id"]
        states = self.states.of_calendars(account_id, emails)
        calendars = self.calendars.find_many(account_id, emails)

        def one(email: str) -> tuple[str | None, dict[str, Any]]:
            single = {**message, "room_email": email}
            read = (states.get(email) or SyncState(account_id, email), calendars.get(email))
            try:
                return self._handle_message(single, read=read).split(":")[0].split(" (")[0], single
            except Exception:  # noqa: BLE001 - retried on its own below; the others are done
                log.warning("the round of %s failed; it is retried on its own", email, exc_info=True)
                return None, single

        calls = [lambda email=email: one(email) for email in emails]
        done = self.round_pool.run(calls) if self.round_pool is not None else [call() for call in calls]
        outcomes = Counter(outcome for outcome, _ in done if outcome is not None)
        failed = [single for outcome, single in done if outcome is None]
        self.parallel.run([lambda single=single: self.queue.send_message(json.dumps(single)) for single in failed])
        parts = [f"{count} {outcome}" for outcome, count in outcomes.most_common()]
        parts += [f"{len(failed)} retried on their own"] if failed else []
        return f"{sum(outcomes.values()) + len(failed)} rooms: " + ", ".join(parts)

    def _handle_message(self, message: dict[str, Any],
                        read: tuple[SyncState, Calendar | None] | None = None) -> str:
        """One room's message; `read`: its sync state and calendar (None: gone), when already read.
        Otherwise the sync state first: a message an earlier or the running round covers (about half
        of them under a backlog) costs this one read. A lost notification's `resync_needed` flag, read
        from the calendar below, always comes with its own `missed` message, judged as a full one here."""
        state = read[0] if read is not None else self.states.get(message["account_id"], message["room_email"])
        full = message["change_type"] in FULL_KINDS
        received = _moment(message.get("received_at")) or utc_now()
        if _covered(state.last_full_at if full else state.last_round_started_at, received):
            return "covered by an earlier round"
        if state.lease is not None and state.lease.is_live():
            if (state.round_is_full or not full) and _covered(state.round_started_at, received):
                return "covered by the running round"
            return self._follow_up(message, FOLLOW_UP_SECONDS, "waiting for the running round")
        calendar = read[1] if read is not None else self.calendars.find(message["account_id"], message["room_email"])
        if calendar is None:
            log.info("dropped a change for %s: no such calendar", message["room_email"])
            return "dropped: unknown calendar"
        if calendar.status is not CalendarStatus.CONNECTED:
            return f"dropped: the calendar is {calendar.status.value}"
        full = full or calendar.resync_needed
        inserted = state.etag is None  # this round makes the room's state row
        state.lease = Lease.new(uuid.uuid4().hex[:12], ROUND_LEASE)
        state.round_started_at = iso_precise(utc_now())
        state.round_is_full = full or not state.delta_link
        try:
            self.states.save(state)
        except (Conflict, ConcurrencyConflict):
            return self._follow_up(message, FOLLOW_UP_SECONDS, "another round took the room first")
        return self._round(calendar, state, message, full, inserted)

    def _round(self, calendar: Calendar, state: SyncState, message: dict[str, Any], full: bool,
               inserted: bool) -> str:
        window = sync_window(utc_now(), self.days_back, self.days_ahead)
        same_window = (state.window_start, state.window_end) == (iso(window[0]), iso(window[1]))
        link = state.delta_link if state.delta_link and same_window and not full else None
        try:
            result = self.rounds.run(calendar, link=link, window=window, renew=lambda: self._renew(state))
        except GraphError as error:
            if error.is_transient:
                delay = error.retry_after if error.retry_after is not None else 30.0
                self._release(state, error=f"Microsoft Graph answered {error.status}: retrying in {delay:.0f} s")
                return self._follow_up(message, delay, "throttled")
            self._release(state, error=_explain(error, calendar.email))
            return f"failed: {error.graph_code}"
        except (TokenRefused, IdentityUnavailable) as error:
            self._release(state, error=f"no token for the tenant: {error.message}")
            return "failed: token"
        except Exception as error:
            self._release(state, error=f"the sync round failed ({type(error).__name__}); retrying")
            raise
        self._finish(calendar, state, result, window, inserted)
        kind = "full" if result.full else "incremental"
        return f"synced ({kind}: +{result.added} ~{result.changed} -{result.removed})"

    def _finish(self, calendar: Calendar, state: SyncState, result: RoundResult,
                window: tuple[datetime, datetime], inserted: bool) -> None:
        now = utc_now()
        state.delta_link = result.delta_link
        state.window_start, state.window_end = iso(window[0]) or "", iso(window[1]) or ""
        state.last_round_started_at = state.round_started_at
        state.last_synced_at = iso(now) or ""
        if result.full:
            state.last_full_at = state.round_started_at
        state.bookings = result.bookings if result.bookings is not None else max(
            0, state.bookings + result.added - result.removed)
        state.upcoming = self._upcoming(calendar, state, result, now)
        state.next_bookings = state.upcoming.shown()
        if not self._release(state, error=""):
            return
        if inserted and self.calendars.find(calendar.account_id, calendar.email) is None:
            # Removed while this round ran, after the row it made was gone: nothing failed the save.
            self.states.delete(calendar.account_id, calendar.email)
            self.store.remove_calendar(calendar.account_id, calendar.email)
        elif result.full and calendar.resync_needed:
            self._clear_resync_needed(calendar)

    def _upcoming(self, calendar: Calendar, state: SyncState, result: RoundResult, now: datetime) -> Upcoming:
        """The room's next bookings from what the round holds; the table only when that cannot tell."""
        if result.full:
            return Upcoming.of((b for b in result.rows.values() if b is not None), now)
        known = state.upcoming.after(result.rows, now) if state.upcoming is not None else None
        if known is not None:
            return known
        return Upcoming.of(self.store.between(calendar.account_id, calendar.email, now, now + REACH), now)

    # --- the lease -------------------------------------------------------------------------

    def _renew(self, state: SyncState) -> None:
        """Hold the lease longer while pages come; a round that lost it stops here."""
        if state.lease is None:
            return
        expires = state.lease.expires
        if expires is not None and expires - utc_now() > ROUND_LEASE / 2:
            return
        state.lease = state.lease.renewed(ROUND_LEASE)
        self.states.save(state)

    def _release(self, state: SyncState, *, error: str) -> bool:
        """Give up the lease (and say how the round went); False when the state was written by someone
        else meanwhile. When its row is gone, the calendar was removed (which deletes the state before
        the bookings), so what this round wrote after the bookings went is removed here."""
        state.lease = None
        state.round_started_at = ""
        state.round_is_full = False
        if error:
            state.last_error, state.error_at, state.errors = error[:500], iso(utc_now()) or "", state.errors + 1
        else:
            state.last_error, state.error_at, state.errors = "", "", 0
        try:
            self.states.save(state)
            return True
        except (Conflict, ConcurrencyConflict):
            if state.etag and self.states.get(state.account_id, state.email).etag is None:
                log.info("%s was removed while its round ran: removing what the round wrote", state.email)
                self.store.remove_calendar(state.account_id, state.email)
            else:
                log.warning("the sync state of %s changed while its round ran; its lease had expired", state.email)
            return False

    def _clear_resync_needed(self, calendar: Calendar) -> None:
        def apply(current: Calendar) -> bool:
            needed, current.resync_needed = current.resync_needed, False
            return needed

        self.calendars.change(calendar, apply, attempts=3)

    def _follow_up(self, message: dict[str, Any], delay: float, why: str) -> str:
        """Put the message back for later (a copy, so this delivery can end)."""
        follow_ups = int(message.get("follow_ups") or 0) + 1
        if follow_ups > MAX_FOLLOW_UPS:
            log.warning("gave up on a change of %s after %d follow-ups (%s); the daily round covers it",
                        message["room_email"], MAX_FOLLOW_UPS, why)
            return "dropped: too many follow-ups"
        self.queue.send_message(json.dumps({**message, "follow_ups": follow_ups}),
                                visibility_timeout=max(1, min(int(delay + 0.999), 3600)))
        return f"deferred ({why})"

    # --- the daily round and what nothing else cleans ---------------------------------------

    def sweep(self) -> dict[str, int]:
        """Ask for a full round of every connected calendar whose window has moved or whose last full
        round is older than a day; remove the bookings and state of calendars that are gone, and
        the change feed's days older than it keeps. Repeatable: a round asked for twice runs once."""
        window_start = iso(sync_window(utc_now(), self.days_back, self.days_ahead)[0])
        stale_before = iso(utc_now() - SAFETY_ROUND) or ""
        requested = purged = 0
        for account_id in [account.account_id for account in self.accounts.all()
                           if account.status is AccountStatus.VERIFIED]:
            states = {state.email: state for state in self.states.of_account(account_id)}
            due = [c for c in self.calendars.in_status(account_id, CalendarStatus.CONNECTED)
                   if c.email not in states or states[c.email].window_start != window_start
                   or states[c.email].last_full_at < stale_before]
            requested += self.request_resync(due, "daily round")
            calendars = self.calendars.emails_of(account_id)  # read after the states: a gone one is gone
            for email in states:
                if email not in calendars:
                    # The state first, as removing a calendar does: a round still running fails to save.
                    self.states.delete(account_id, email)
                    self.store.remove_calendar(account_id, email)
                    purged += 1
        return {"requested": requested, "purged": purged, "changes_pruned": self.feed.prune()}


def _moment(text: Any) -> datetime | None:
    try:
        return parse_iso(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _covered(round_started_at: str, received: datetime) -> bool:
    started = _moment(round_started_at)
    return started is not None and started >= received + CLOCK_MARGIN


def _parse(body: bytes | str) -> dict[str, Any] | None:
    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(message, dict) or not all(isinstance(message.get(k), str) and message.get(k)
                                                for k in ("account_id", "room_email")):
        return None
    message.setdefault("change_type", "updated")
    return message


def _explain(error: GraphError, email: str) -> str:
    if error.is_access_policy_denial:
        return (f"access to {email}'s calendar is denied by the tenant's application access policy or RBAC scope: "
                "include this room in the app's scope")
    if error.status == 404:
        return f"{email} has no calendar Graph can read ({error.graph_code})"
    if error.status in (401, 403):
        return f"the app may not read {email}'s calendar ({error.graph_code}): check the permissions, re-authenticate"
    return f"Microsoft Graph refused the sync ({error.status} {error.graph_code}: {error.message[:200]})"
