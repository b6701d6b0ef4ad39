"""Booking sync: turning the `calendar-changes` queue into delta rounds, coalesced per room.

Owns when a round runs. A message says "this room may have changed" (a change notification,
`missed`, or a resync the connector, the consent flow or the daily sweep asks for); it never
carries the change. Many messages for one room become one round: a message received before
a round began is covered by it and dropped without a Graph call (a message asking for full
rounds may name several rooms of an account: their states and calendars are read with one
query each, and each room is judged and run side by side); one received while a round runs
comes back shortly (a delayed copy), by when the next round covers it. The rounds it decides
on run under a lease on each room's sync state (`leased.LeasedRounds`), so one round per room
runs at a time on any instance, and a killed round's lease expires and the message's next
delivery runs it again. Throttling (429, 5xx) puts the message back until Retry-After; a
refusal an admin must fix (access denied, mailbox gone) is recorded on the sync state and the
message is done; anything else raises, so the host retries and, after the last try, moves the
message to the poison queue — the last try records the error first, so the page shows it. A
message is judged by the room's sync state before its calendar is read, so one already covered
costs one read.
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
from shared.bookings.leased import FOLLOW_UP_SECONDS, ROUND_LEASE, LeasedRounds, Round
from shared.bookings.rounds import DeltaRounds, sync_window
from shared.bookings.store import BookingStore
from shared.bookings.sync_state import SyncState, SyncStates
from shared.calendars import Calendar, CalendarRepository
from shared.models import AccountStatus, CalendarStatus, iso, iso_precise, parse_iso, utc_now
from shared.storage import Lease, Parallel

log = logging.getLogger("rcc.sync")

# A message received this close to a round's start may have been sent for a change the round
# did not see (clocks of two instances differ): it is covered only by a round that began later.
CLOCK_MARGIN = timedelta(seconds=2)
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
        self.leased = LeasedRounds(states=states, calendars=calendars, store=store, rounds=rounds,
                                   days_back=days_back, days_ahead=days_ahead, round_pool=round_pool)
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
            self.leased.release(state, error=f"a change could not be synced after {LAST_DELIVERY} tries "
                                             f"({type(error).__name__}); it is in the calendar-changes-poison "
                                             "queue, and the next change or the daily round reads the calendar again")
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
        calendars read with one query each, their leases taken and given back with one transaction
        each, the rounds between side by side on the round pool. A room whose round raised gets a
        message of its own, so its retries and poison record are its own."""
        emails = list(dict.fromkeys(room for room in rooms if isinstance(room, str) and room))
        account_id = message["account_id"]
        states = self.states.of_calendars(account_id, emails)
        calendars = self.calendars.find_many(account_id, emails)
        judged = [self._judge({**message, "room_email": email},
                              (states.get(email) or SyncState(account_id, email), calendars.get(email)))
                  for email in emails]
        self._run([run for run in judged if isinstance(run, Round)])
        failed = [run for run in judged if isinstance(run, Round) and run.raised is not None]
        for run in failed:
            log.warning("the round of %s failed; it is retried on its own", run.calendar.email, exc_info=run.raised)
        self.parallel.run([lambda run=run: self.queue.send_message(json.dumps(run.message)) for run in failed])
        outcomes = Counter((run if isinstance(run, str) else run.outcome).split(":")[0].split(" (")[0]
                           for run in judged if isinstance(run, str) or run.raised is None)
        parts = [f"{count} {outcome}" for outcome, count in outcomes.most_common()]
        parts += [f"{len(failed)} retried on their own"] if failed else []
        return f"{sum(outcomes.values()) + len(failed)} rooms: " + ", ".join(parts)

    def _run(self, runs: list[Round]) -> None:
        self.leased.run(runs)
        for run in runs:
            if run.retry_after is not None:
                run.outcome = self._follow_up(run.message, run.retry_after, run.outcome)

    def _handle_message(self, message: dict[str, Any]) -> str:
        run = self._judge(message)
        if isinstance(run, str):
            return run
        self._run([run])
        if run.raised is not None:
            raise run.raised
        return run.outcome

    def _judge(self, message: dict[str, Any], read: tuple[SyncState, Calendar | None] | None = None) -> Round | str:
        """What one room's message asks: a round to run (its lease not yet taken), or what happened
        instead. `read`: the room's sync state and calendar (None: gone), when already read.
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
        run = Round(message, calendar, state, full=full, inserted=state.etag is None)
        state.lease = Lease.new(uuid.uuid4().hex[:12], ROUND_LEASE)
        state.round_started_at = iso_precise(utc_now())
        state.round_is_full = full or not state.delta_link
        return run

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
