"""Running rounds under the rooms' leases: one round per room at a time, on any instance.

Owns a round from its lease to its release. `sync.BookingSync` judges a message and hands over
the rounds to run (`Round`: the room's state with the lease set, its calendar, full or not);
this takes their leases (one transaction for several rooms of an account, else each on its
own), runs the rounds side by side on the round pool (`rounds.DeltaRounds` writes the rows),
and gives the leases back saying how each went (again one transaction for several). A lease
is renewed with every page, so only a round that died holds it long; every state write is
If-Match, so a round that lost its lease learns it when it saves, and so does a round whose
calendar was removed meanwhile (removing it deletes the state before the bookings): then the
round removes what it wrote. Throttling and a lease taken first are left on the run for the
caller to put its message back; it never touches the queue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.bookings.rounds import DeltaRounds, RoundResult, sync_window
from shared.bookings.store import BookingStore
from shared.bookings.sync_state import SyncState, SyncStates
from shared.bookings.upcoming import REACH, Upcoming
from shared.calendars import Calendar, CalendarRepository
from shared.errors import ConcurrencyConflict, Conflict
from shared.graph import GraphError, IdentityUnavailable, TokenRefused
from shared.models import iso, utc_now
from shared.storage import Parallel

log = logging.getLogger("rcc.sync")

# One round's lease; renewed with every page, so only a round that died holds it this long.
ROUND_LEASE = timedelta(seconds=30)
# How long a message waits to come back when another round took the room first.
FOLLOW_UP_SECONDS = 2


class LeasedRounds:
    def __init__(self, *, states: SyncStates, calendars: CalendarRepository, store: BookingStore,
                 rounds: DeltaRounds, days_back: int, days_ahead: int, round_pool: Parallel | None) -> None:
        self.states = states
        self.calendars = calendars
        self.store = store
        self.rounds = rounds
        self.days_back = days_back
        self.days_ahead = days_ahead
        # Where several rooms' rounds run side by side (None: in turn). Not the storage pool: a
        # round waits on that pool's requests, and a pool whose threads wait on their own pool stalls.
        self.round_pool = round_pool

    def run(self, runs: list[Round]) -> None:
        """Take the rooms' leases, run their rounds (side by side), give the leases back; each run's
        outcome, what it raised and when its message should come back are left on it."""
        taken = self._take(runs)
        calls = [lambda run=run: self._round(run) for run in taken]
        if self.round_pool is not None:
            self.round_pool.run(calls)
        else:
            for call in calls:
                call()
        self._give_back(taken)

    def _take(self, runs: list[Round]) -> list[Round]:
        """The leases of these rooms (of one account), in one transaction when there are several;
        when that finds any taken, each on its own. A room taken first has its message come back."""
        if len(runs) > 1:
            try:
                self.states.save_all([run.state for run in runs])
                return runs
            except (Conflict, ConcurrencyConflict):
                pass
        taken = []
        for run in runs:
            try:
                self.states.save(run.state)
                taken.append(run)
            except (Conflict, ConcurrencyConflict):
                run.retry_after, run.outcome = FOLLOW_UP_SECONDS, "another round took the room first"
        return taken

    def _round(self, run: Round) -> None:
        """The round itself, up to (not including) giving the lease back."""
        calendar, state = run.calendar, run.state
        window = sync_window(utc_now(), self.days_back, self.days_ahead)
        same_window = (state.window_start, state.window_end) == (iso(window[0]), iso(window[1]))
        link = state.delta_link if state.delta_link and same_window and not run.full else None
        try:
            result = self.rounds.run(calendar, link=link, window=window, renew=lambda: self._renew(state))
        except GraphError as error:
            if error.is_transient:
                run.retry_after = error.retry_after if error.retry_after is not None else 30.0
                run.error = f"Microsoft Graph answered {error.status}: retrying in {run.retry_after:.0f} s"
                run.outcome = "throttled"
            else:
                run.error, run.outcome = _explain(error, calendar.email), f"failed: {error.graph_code}"
            return
        except (TokenRefused, IdentityUnavailable) as error:
            run.error, run.outcome = f"no token for the tenant: {error.message}", "failed: token"
            return
        except Exception as error:  # noqa: BLE001 - recorded on the state, raised again by the caller
            run.error, run.raised = f"the sync round failed ({type(error).__name__}); retrying", error
            return
        now = utc_now()
        try:
            upcoming = self._upcoming(calendar, state, result, now)  # before the state changes: it may read
        except Exception as error:  # noqa: BLE001 - as a failed round: the rows are written, the state is not
            run.error, run.raised = f"the sync round failed ({type(error).__name__}); retrying", error
            return
        run.result = result
        state.delta_link = result.delta_link
        state.window_start, state.window_end = iso(window[0]) or "", iso(window[1]) or ""
        state.last_round_started_at = state.round_started_at
        state.last_synced_at = iso(now) or ""
        if result.full:
            state.last_full_at = state.round_started_at
        state.bookings = result.bookings if result.bookings is not None else max(
            0, state.bookings + result.added - result.removed)
        state.upcoming = upcoming
        state.next_bookings = state.upcoming.shown()
        kind = "full" if result.full else "incremental"
        run.outcome = f"synced ({kind}: +{result.added} ~{result.changed} -{result.removed})"

    def _give_back(self, runs: list[Round]) -> None:
        """Release the leases (with how each round went), in one transaction when there are several;
        when that finds any state written meanwhile, each on its own (`_save_released` says what that
        means). Then what follows a saved round: a calendar removed meanwhile loses what the round
        wrote, a full round clears `resync_needed`."""
        for run in runs:
            _released(run.state, run.error)
        together = False
        if len(runs) > 1:
            try:
                self.states.save_all([run.state for run in runs])
                together = True
            except (Conflict, ConcurrencyConflict):
                pass
        done = [run for run in runs if (together or self._save_released(run.state)) and run.result is not None]
        # A round that made its room's state row learns whether the calendar was removed meanwhile
        # (after that row was gone, so nothing failed the save): one read for all of them.
        inserted = [run for run in done if run.inserted]
        remaining = self.calendars.find_many(runs[0].calendar.account_id,
                                             [run.calendar.email for run in inserted]) if inserted else {}
        for run in done:
            calendar = run.calendar
            if run.inserted and calendar.email not in remaining:
                self.states.delete(calendar.account_id, calendar.email)
                self.store.remove_calendar(calendar.account_id, calendar.email)
            elif run.result is not None and run.result.full and calendar.resync_needed:
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

    def release(self, state: SyncState, *, error: str) -> bool:
        """Give up the lease (and say how the round went); False when the state was written by someone
        else meanwhile (`_save_released`)."""
        _released(state, error)
        return self._save_released(state)

    def _save_released(self, state: SyncState) -> bool:
        """Save a released state; False when it was written by someone else meanwhile. When its row
        is gone, the calendar was removed (which deletes the state before the bookings), so what this
        round wrote after the bookings went is removed here."""
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


@dataclass
class Round:
    """One room's round, from its judged message to its lease given back."""

    message: dict[str, Any]
    calendar: Calendar
    state: SyncState  # with the round's lease set once judged
    full: bool
    inserted: bool  # this round makes the room's state row
    result: RoundResult | None = None
    error: str = ""  # what giving the lease back records ("": none)
    outcome: str = ""  # what happened, for the log
    retry_after: float | None = None  # the message comes back after this many seconds (outcome: why)
    raised: Exception | None = None  # what the caller raises (or retries on its own)


def _released(state: SyncState, error: str) -> None:
    """The state without its lease, saying how the round went."""
    state.lease = None
    state.round_started_at = ""
    state.round_is_full = False
    if error:
        state.last_error, state.error_at, state.errors = error[:500], iso(utc_now()) or "", state.errors + 1
    else:
        state.last_error, state.error_at, state.errors = "", "", 0


def _explain(error: GraphError, email: str) -> str:
    if error.is_access_policy_denial:
        return (f"access to {email}'s calendar is denied by the tenant's application access policy or RBAC scope: "
                "include this room in the app's scope")
    if error.status == 404:
        return f"{email} has no calendar Graph can read ({error.graph_code})"
    if error.status in (401, 403):
        return f"the app may not read {email}'s calendar ({error.graph_code}): check the permissions, re-authenticate"
    return f"Microsoft Graph refused the sync ({error.status} {error.graph_code}: {error.message[:200]})"
