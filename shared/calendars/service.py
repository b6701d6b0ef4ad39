"""What an administrator does with an account's room calendars: list, add, remove, link, Connect Calendars.

Owns the order of steps across the calendar, its space, its subscription and the audit log,
so each step can be repeated safely: removing deletes the subscription first, then the row
(If-Match), then frees the space. It never calls Graph except through the subscription hook
given at construction, and never decides a link's rules (`linking`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

from shared.accounts import AccountRepository
from shared.audit import AuditLog
from shared.calendars.linking import SpaceLinks
from shared.calendars.model import Calendar
from shared.calendars.repository import CalendarRepository
from shared.errors import ConcurrencyConflict, Conflict, Invalid, NotFound
from shared.identifiers import MAX_EMAIL_LENGTH, normalise_email
from shared.models import AccountStatus, CalendarStatus, iso, utc_now
from shared.storage import MAX_BATCH_SIZE

COUNTS_REUSE_SECONDS = 10.0

SubscriptionRemover = Callable[[Calendar], None]


class CalendarHooks:
    """What other capabilities do when a calendar changes (bookings and sync); none by default."""

    def removed(self, calendar: Calendar) -> None:
        """After its subscription is deleted and before its row is: its bookings go."""

    def relinked(self, calendar: Calendar, previous_space_id: str | None) -> None:
        """After it was linked to another space, or unlinked."""

    def summaries(self, account_id: str, calendars: list[Calendar]) -> dict[str, dict[str, Any]]:
        """Extra state shown per calendar on the page (`sync`)."""
        return {}


class CalendarService:
    def __init__(
        self,
        *,
        calendars: CalendarRepository,
        accounts: AccountRepository,
        links: SpaceLinks,
        audit: AuditLog,
        remove_subscription: SubscriptionRemover,
        next_run_at: Callable[[], str | None],
        hooks: CalendarHooks | None = None,
        live_runs: Callable[[], Collection[str]] | None = None,
    ) -> None:
        self.calendars = calendars
        self.accounts = accounts
        self.links = links
        self.audit = audit
        self.remove_subscription = remove_subscription
        self.next_run_at = next_run_at
        self.hooks = hooks or CalendarHooks()
        self.live_runs = live_runs
        self._counts: dict[str, tuple[float, dict[str, int]]] = {}

    # --- reading ---------------------------------------------------------------------------

    def list(
        self,
        account_id: str,
        *,
        status: str | None = None,
        linked: str | None = None,
        q: str | None = None,
        page_size: int = 50,
        continuation_token: str | None = None,
    ) -> dict[str, Any]:
        self.accounts.get(account_id)
        wanted: CalendarStatus | None = None
        if status:
            try:
                wanted = CalendarStatus(status)
            except ValueError:
                raise Invalid(f"status must be one of {', '.join(s.value for s in CalendarStatus)}") from None
        if linked is not None and linked not in ("true", "false"):
            raise Invalid("linked must be true or false")
        prefix = q.strip().lower()[:MAX_EMAIL_LENGTH] if q else None
        page = self.calendars.page(account_id, status=wanted, linked=None if linked is None else linked == "true",
                                   email_prefix=prefix or None, page_size=page_size,
                                   continuation_token=continuation_token)
        summaries = self.hooks.summaries(account_id, page.items)
        live = self._live_runs(page.items)
        return {
            "items": [{**calendar.to_api(live_runs=live), "sync": summaries.get(calendar.email)}
                      for calendar in page.items],
            "continuation_token": page.continuation_token,
            "counts": self.counts(account_id, reuse=continuation_token is not None),
        }

    def counts(self, account_id: str, *, reuse: bool = False) -> dict[str, int]:
        """Calendars per status (and linked) of the account. Counting reads every row of the
        account, so while paging on (`reuse`) a count a few seconds old serves; the first
        page always counts afresh, and changes made through this service forget it."""
        cached = self._counts.get(account_id)
        if reuse and cached is not None and time.monotonic() - cached[0] < COUNTS_REUSE_SECONDS:
            return dict(cached[1])
        counts = self._count(account_id)
        self._counts[account_id] = (time.monotonic(), counts)
        return dict(counts)

    def _changed(self, account_id: str) -> None:
        self._counts.pop(account_id, None)

    def _count(self, account_id: str) -> dict[str, int]:
        counts = {status.value: 0 for status in CalendarStatus}
        linked = 0
        for status, is_linked in self.calendars.statuses(account_id):
            counts[status] = counts.get(status, 0) + 1
            linked += 1 if is_linked else 0
        counts["total"] = sum(counts[s.value] for s in CalendarStatus)
        counts["linked"] = linked
        return counts

    def get(self, account_id: str, email: str) -> dict[str, Any]:
        self.accounts.get(account_id)
        calendar = self.calendars.get(account_id, normalise_email(email))
        return {**calendar.to_api(live_runs=self._live_runs([calendar])),
                "sync": self.hooks.summaries(account_id, [calendar]).get(calendar.email)}

    def _live_runs(self, calendars: list[Calendar]) -> Collection[str] | None:
        """The connector runs alive now, read only when a room waits on a run's lease."""
        if self.live_runs is None or not any(c.status is CalendarStatus.CONNECTING and c.lease is not None
                                             for c in calendars):
            return None
        return self.live_runs()

    # --- adding and removing ---------------------------------------------------------------

    def _verified_account(self, account_id: str) -> None:
        account = self.accounts.get(account_id)
        if account.status is not AccountStatus.VERIFIED:
            raise Conflict(f"the account {account.tenant_name} is {account.status.label.lower()}: "
                           "authorize it before adding calendars")

    def add(self, account_id: str, email: Any, space_ref: Any, actor: str) -> dict[str, Any]:
        """Add one calendar, optionally linked. The space is claimed first and released
        again if the calendar cannot be added, so nothing is half-written."""
        self._verified_account(account_id)
        address = normalise_email(email)
        if self.calendars.find(account_id, address):
            raise Conflict(f"{address} is already added to this account")
        space = self.links.claim(self.links.resolve(space_ref), account_id, address) if space_ref else None
        calendar = Calendar(account_id=account_id, email=address, added_at=iso(utc_now()), added_by=actor,
                            updated_at=iso(utc_now()))
        calendar.link_to(space)
        try:
            self.calendars.add(calendar)
        except Conflict:
            if space:
                self.links.release(space.space_id, account_id, address)
            raise
        self._changed(account_id)
        self.audit.record(actor, "calendar.add", address, outcome="ok", account=account_id,
                          space=space.number if space else None)
        return calendar.to_api()

    def add_many(self, account_id: str, choices: Any, actor: str) -> dict[str, Any]:
        """Add chosen rooms (each `{"email", "space_id"?}`) in one request; per-item results."""
        self._verified_account(account_id)
        if not isinstance(choices, list) or not choices:
            raise Invalid("send a non-empty list of rooms to add")
        if len(choices) > 1000:
            raise Invalid("add at most 1,000 rooms per request")
        results = []
        for index, choice in enumerate(choices):
            if not isinstance(choice, dict):
                results.append({"index": index, "ok": False, "error": "each room must be an object"})
                continue
            try:
                added = self.add(account_id, choice.get("email"), choice.get("space_id"), actor)
                results.append({"index": index, "ok": True, "calendar": added})
            except (Invalid, Conflict, NotFound) as error:
                results.append({"index": index, "ok": False, "email": choice.get("email"), "error": error.message})
        return {"added": sum(1 for r in results if r["ok"]), "results": results}

    def remove(self, account_id: str, email: str, actor: str) -> dict[str, Any]:
        """Subscription first, then the calendar (If-Match), then its space: repeatable."""
        self.accounts.get(account_id)
        calendar = self.calendars.get(account_id, normalise_email(email))
        self.remove_subscription(calendar)
        self.hooks.removed(calendar)
        self.calendars.delete(calendar)
        if calendar.space_id:
            self.links.release(calendar.space_id, account_id, calendar.email)
        self._changed(account_id)
        self.audit.record(actor, "calendar.remove", calendar.email, outcome="ok", account=account_id)
        return {"removed": calendar.email, "space_freed": calendar.space_number}

    def remove_all_calendars(self, account_id: str, actor: str) -> int:
        removed = 0
        for calendar in list(self.calendars.all_of(account_id)):
            self.remove_subscription(calendar)
            self.hooks.removed(calendar)
            self.calendars.delete(calendar, if_unchanged=False)
            if calendar.space_id:
                self.links.release(calendar.space_id, account_id, calendar.email)
            removed += 1
        self._changed(account_id)
        return removed

    # --- linking ---------------------------------------------------------------------------

    def link(self, account_id: str, email: str, space_ref: Any, actor: str) -> dict[str, Any]:
        self.accounts.get(account_id)
        calendar = self.calendars.get(account_id, normalise_email(email))
        space = self.links.resolve(space_ref)
        if calendar.space_id == space.space_id:
            return calendar.to_api()
        previous_space_id = calendar.space_id
        claimed = self.links.link(calendar, space)
        self.hooks.relinked(calendar, previous_space_id)
        self._changed(account_id)
        self.audit.record(actor, "calendar.link", calendar.email, outcome="ok", account=account_id,
                          space=claimed.number)
        return calendar.to_api()

    def unlink(self, account_id: str, email: str, actor: str) -> dict[str, Any]:
        self.accounts.get(account_id)
        calendar = self.calendars.get(account_id, normalise_email(email))
        space_number, previous_space_id = calendar.space_number, calendar.space_id
        if not calendar.space_id:
            return calendar.to_api()
        self.links.unlink(calendar)
        self.hooks.relinked(calendar, previous_space_id)
        self._changed(account_id)
        self.audit.record(actor, "calendar.unlink", calendar.email, outcome="ok", account=account_id,
                          space=space_number)
        return calendar.to_api()

    # --- Connect Calendars -----------------------------------------------------------------

    def queue_calendars_for_connection(self, account_id: str, actor: str) -> dict[str, Any]:
        """Every added (and failed) calendar becomes queued; the timer connects them.

        Written in entity-group transactions, each entity If-Match; a batch that loses a
        race is retried entity by entity, so a concurrent change is never overwritten."""
        self._verified_account(account_id)
        candidates = list(self.calendars.in_status(account_id, CalendarStatus.ADDED, CalendarStatus.FAILED))
        queued = 0
        for start in range(0, len(candidates), MAX_BATCH_SIZE):
            chunk = candidates[start:start + MAX_BATCH_SIZE]
            for calendar in chunk:
                calendar.set_status(CalendarStatus.QUEUED, "waiting for the next connector run")
                calendar.next_attempt_at = None
                calendar.attempts = 0 if calendar.failure_kind is None else calendar.attempts
            try:
                queued += len(self.calendars.save_many(chunk))
            except ConcurrencyConflict:
                # Someone changed one of them meanwhile: the batch applied nothing; go one by one.
                for calendar in chunk:
                    queued += self._queue_one(account_id, calendar.email)
        self._changed(account_id)
        self.audit.record(actor, "calendars.connect", account_id, outcome="ok", queued=queued)
        return {"queued": queued, "next_run_at": self.next_run_at()}

    def _queue_one(self, account_id: str, email: str) -> int:
        current = self.calendars.find(account_id, email)
        if current is None or current.status not in (CalendarStatus.ADDED, CalendarStatus.FAILED):
            return 0
        current.set_status(CalendarStatus.QUEUED, "waiting for the next connector run")
        current.next_attempt_at = None
        try:
            self.calendars.save(current)
        except ConcurrencyConflict:
            return 0
        return 1

    def requeue_after_reauthorization(self, account_id: str) -> int:
        """Calendars that failed because the tenant stopped letting us in go back in the queue."""
        requeued = 0
        for calendar in list(self.calendars.in_status(account_id, CalendarStatus.FAILED)):
            if calendar.failure_kind is not None and calendar.failure_kind.fixed_by_reauthorizing:
                requeued += self._queue_one(account_id, calendar.email)
        self._changed(account_id)
        return requeued

