"""Room calendars of an account: add, list, link to a space, unlink, remove, queue.

Owns the Calendars table (PartitionKey = account id, RowKey = normalised email)
and the rules that span a calendar and its space: one space has at most one
calendar and one calendar at most one space. The space side is claimed first
(`SpaceDirectory.claim`, ETag-guarded), then the calendar is written If-Match;
if that loses, the claim is released — so a race never leaves two links and a
crash leaves at worst a stale claim, which the next link attempt repairs.
Status changes go through `CalendarStatus.check`. It never calls Graph except
through the subscription hook in `remove`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from shared.accounts import AccountRepository
from shared.audit import AuditLog
from shared.errors import ConcurrencyConflict, Conflict, Invalid, NotFound
from shared.models import AccountStatus, CalendarStatus, iso, parse_iso, utc_now
from shared.spaces import Space, SpaceDirectory, SpaceTaken
from shared.storage import Table
from shared.storage.tables import MAX_BATCH_SIZE

log = logging.getLogger("rcc.calendars")

MAX_EMAIL_LENGTH = 254
COUNTS_REUSE_SECONDS = 10.0
# A claim on a space whose calendar does not point back is a leftover of a crash only once
# it is older than any link in progress (claim, then one calendar write) could take.
STALE_CLAIM_AGE = timedelta(minutes=2)
_LOCAL_PART = re.compile(r"^[a-z0-9!$%&'*+=^_`{|}~-]+(?:\.[a-z0-9!$%&'*+=^_`{|}~-]+)*$")
_DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$")

# Failure reasons that mean "the tenant stopped letting us in": re-authorizing fixes them.
AUTHORIZATION_FAILURE_KINDS = {"consent", "permission"}


def normalise_email(value: Any) -> str:
    """A room mailbox address, trimmed and lower-cased; `Invalid` saying what is wrong."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid("enter the room's email address")
    text = value.strip().lower()
    if len(text) > MAX_EMAIL_LENGTH:
        raise Invalid(f"the email address is {len(text)} characters long; the limit is {MAX_EMAIL_LENGTH}")
    if not text.isascii():
        raise Invalid(f"{text!r} contains non-ASCII characters; room mailbox addresses are plain ASCII")
    if text.count("@") != 1:
        raise Invalid(f"{text!r} is not an email address (it needs exactly one @)")
    local, domain = text.split("@")
    if local.startswith('"'):
        raise Invalid(f"{text!r} has a quoted local part; room mailboxes never do — check the address")
    if not local or len(local) > 64 or not _LOCAL_PART.match(local):
        raise Invalid(f"{text!r} is not a valid email address (check the part before the @)")
    if not _DOMAIN.match(domain):
        raise Invalid(f"{text!r} is not a valid email address (check the domain after the @)")
    return text


@dataclass
class Calendar:
    account_id: str
    email: str
    status: CalendarStatus = CalendarStatus.ADDED
    status_reason: str | None = None
    failure_kind: str | None = None
    space_id: str | None = None
    space_number: str | None = None
    space_name: str | None = None
    display_name: str | None = None
    mailbox_id: str | None = None
    subscription_id: str | None = None
    subscription_expires_at: str | None = None
    client_state_hash: str | None = None
    attempts: int = 0
    next_attempt_at: str | None = None
    last_error: str | None = None
    last_notification_at: str | None = None
    resync_needed: bool = False
    added_at: str | None = None
    added_by: str | None = None
    updated_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    etag: str | None = None

    _FIELDS = (
        "status_reason", "failure_kind", "space_id", "space_number", "space_name", "display_name", "mailbox_id",
        "subscription_id", "subscription_expires_at", "client_state_hash", "next_attempt_at", "last_error",
        "last_notification_at", "added_at", "added_by", "updated_at",
    )

    def to_entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {
            "PartitionKey": self.account_id,
            "RowKey": self.email,
            "status": self.status.value,
            "attempts": self.attempts,
            "resync_needed": self.resync_needed,
            "_etag": self.etag,
        }
        for name in self._FIELDS:
            entity[name] = getattr(self, name) or ""
        entity.update(self.extra)
        return entity

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> Calendar:
        known = {"PartitionKey", "RowKey", "status", "attempts", "resync_needed", "_etag", "Timestamp",
                 *cls._FIELDS}
        calendar = cls(
            account_id=entity["PartitionKey"],
            email=entity["RowKey"],
            status=CalendarStatus(entity.get("status") or "added"),
            attempts=int(entity.get("attempts") or 0),
            resync_needed=bool(entity.get("resync_needed")),
            extra={k: v for k, v in entity.items() if k not in known},
            etag=entity.get("_etag"),
        )
        for name in cls._FIELDS:
            setattr(calendar, name, entity.get(name) or None)
        return calendar

    def to_api(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "account_id": self.account_id,
            "status": self.status.value,
            "status_reason": self.status_reason,
            "failure_kind": self.failure_kind,
            "resync_needed": self.resync_needed,
            "space": {"id": self.space_id, "number": self.space_number, "name": self.space_name}
            if self.space_id else None,
            "display_name": self.display_name,
            "subscription_expires_at": self.subscription_expires_at,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at,
            "last_error": self.last_error,
            "last_notification_at": self.last_notification_at,
            "last_activity_at": max(filter(None, [self.updated_at, self.last_notification_at]), default=None),
            "added_at": self.added_at,
            "added_by": self.added_by,
        }

    def set_status(self, target: CalendarStatus, reason: str | None = None, failure_kind: str | None = None) -> None:
        """The one way a calendar's status changes."""
        self.status = self.status.check(target)
        self.status_reason = reason
        self.failure_kind = failure_kind if target is CalendarStatus.FAILED else None
        self.updated_at = iso(utc_now())

    def link_to(self, space: Space | None) -> None:
        self.space_id = space.space_id if space else None
        self.space_number = space.number if space else None
        self.space_name = space.name if space else None
        self.updated_at = iso(utc_now())


class CalendarRepository:
    def __init__(self, table: Table) -> None:
        self.table = table

    def get(self, account_id: str, email: str) -> Calendar:
        entity = self.table.get(account_id, email)
        if entity is None:
            raise NotFound(f"{email} is not a calendar of this account")
        return Calendar.from_entity(entity)

    def find(self, account_id: str, email: str) -> Calendar | None:
        entity = self.table.get(account_id, email)
        return Calendar.from_entity(entity) if entity else None

    def add(self, calendar: Calendar) -> Calendar:
        saved = self.table.insert(calendar.to_entity(), exists_message=f"{calendar.email} is already added")
        calendar.etag = saved["_etag"]
        return calendar

    def save(self, calendar: Calendar) -> Calendar:
        saved = self.table.update(calendar.to_entity())
        calendar.etag = saved["_etag"]
        return calendar

    def save_many(self, calendars: Sequence[Calendar]) -> list[Calendar]:
        """Save calendars of one account in one transaction, each only if unchanged since it
        was read: all are saved, or `ConcurrencyConflict` and none is."""
        saved = self.table.transact([("update", calendar.to_entity()) for calendar in calendars])
        for calendar, entity in zip(calendars, saved, strict=True):
            calendar.etag = entity["_etag"]
        return list(calendars)

    def delete(self, calendar: Calendar) -> None:
        self.table.delete(calendar.account_id, calendar.email, etag=calendar.etag)

    def all_of(self, account_id: str, query_filter: str = "", parameters: dict[str, Any] | None = None,
               select: list[str] | None = None) -> Iterable[Calendar]:
        text = "PartitionKey eq @account" + (f" and ({query_filter})" if query_filter else "")
        for entity in self.table.query_all(text, parameters={"account": account_id, **(parameters or {})},
                                           select=select):
            yield Calendar.from_entity(entity)


    def emails_of(self, account_id: str) -> set[str]:
        """Every calendar email of the account, reading keys only."""
        return {e["RowKey"] for e in self.table.query_all("PartitionKey eq @account",
                                                          parameters={"account": account_id}, select=["RowKey"])}


def claim_space(spaces: SpaceDirectory, calendars: CalendarRepository, space: Space, account_id: str,
                email: str) -> Space:
    """Claim the space for the calendar. A claim left by a crash — its holder does not point
    back, and it is older than any link in progress could be — is repaired once; a fresh
    one is never taken over, so two links cannot both win."""
    try:
        return spaces.claim(space.space_id, account_id, email)
    except SpaceTaken as taken:
        if (taken.holder_account_id, taken.holder_email) == (account_id, email):
            raise
        holder = calendars.find(taken.holder_account_id, taken.holder_email)
        if holder is not None and holder.space_id == space.space_id:
            raise
        claimed_at = parse_iso(taken.space.linked_at)
        if claimed_at is None or utc_now() - claimed_at < STALE_CLAIM_AGE:
            raise
        log.warning("repairing a stale claim of space %s by %s", space.space_id, taken.holder_email)
        spaces.release(space.space_id, taken.holder_account_id, taken.holder_email)
        return spaces.claim(space.space_id, account_id, email)


SubscriptionRemover = Callable[[Calendar], None]


class CalendarService:
    def __init__(
        self,
        *,
        calendars: CalendarRepository,
        accounts: AccountRepository,
        spaces: SpaceDirectory,
        audit: AuditLog,
        remove_subscription: SubscriptionRemover,
        next_run_at: Callable[[], str | None],
    ) -> None:
        self.calendars = calendars
        self.accounts = accounts
        self.spaces = spaces
        self.audit = audit
        self.remove_subscription = remove_subscription
        self.next_run_at = next_run_at
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
        clauses = ["PartitionKey eq @account"]
        parameters: dict[str, Any] = {"account": account_id}
        if status:
            try:
                parameters["status"] = CalendarStatus(status).value
            except ValueError:
                raise Invalid(f"status must be one of {', '.join(s.value for s in CalendarStatus)}") from None
            clauses.append("status eq @status")
        if linked is not None:
            if linked not in ("true", "false"):
                raise Invalid("linked must be true or false")
            clauses.append("space_id ne ''" if linked == "true" else "space_id eq ''")
        if q:
            prefix = q.strip().lower()[:MAX_EMAIL_LENGTH]
            if prefix:
                # RowKey is the email: a prefix search is a key-range scan, not a table scan.
                clauses.append("RowKey ge @from and RowKey lt @to")
                parameters.update({"from": prefix, "to": prefix + "\uffff"})
        page = self.calendars.table.query_filled_page(
            " and ".join(clauses), parameters=parameters, page_size=page_size, continuation_token=continuation_token
        )
        return {
            "items": [Calendar.from_entity(e).to_api() for e in page.items],
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
        for entity in self.calendars.table.query_all(
            "PartitionKey eq @account", parameters={"account": account_id}, select=["status", "space_id"]
        ):
            counts[entity.get("status") or "added"] = counts.get(entity.get("status") or "added", 0) + 1
            linked += 1 if entity.get("space_id") else 0
        counts["total"] = sum(counts[s.value] for s in CalendarStatus)
        counts["linked"] = linked
        return counts

    def get(self, account_id: str, email: str) -> dict[str, Any]:
        self.accounts.get(account_id)
        return self.calendars.get(account_id, normalise_email(email)).to_api()

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
        space = self._claim(self._resolve(space_ref), account_id, address) if space_ref else None
        calendar = Calendar(account_id=account_id, email=address, added_at=iso(utc_now()), added_by=actor,
                            updated_at=iso(utc_now()))
        calendar.link_to(space)
        try:
            self.calendars.add(calendar)
        except Conflict:
            if space:
                self.spaces.release(space.space_id, account_id, address)
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
        self.calendars.delete(calendar)
        if calendar.space_id:
            self.spaces.release(calendar.space_id, account_id, calendar.email)
        self._changed(account_id)
        self.audit.record(actor, "calendar.remove", calendar.email, outcome="ok", account=account_id)
        return {"removed": calendar.email, "space_freed": calendar.space_number}

    def remove_all_calendars(self, account_id: str, actor: str) -> int:
        removed = 0
        for calendar in list(self.calendars.all_of(account_id)):
            self.remove_subscription(calendar)
            self.calendars.table.delete(account_id, calendar.email)
            if calendar.space_id:
                self.spaces.release(calendar.space_id, account_id, calendar.email)
            removed += 1
        self._changed(account_id)
        return removed

    # --- linking ---------------------------------------------------------------------------

    def _resolve(self, space_ref: Any) -> Space:
        if not isinstance(space_ref, str) or not space_ref.strip():
            raise Invalid("name the space by its number or id")
        return self.spaces.resolve(space_ref.strip())

    def _claim(self, space: Space, account_id: str, email: str) -> Space:
        return claim_space(self.spaces, self.calendars, space, account_id, email)

    def link(self, account_id: str, email: str, space_ref: Any, actor: str) -> dict[str, Any]:
        self.accounts.get(account_id)
        calendar = self.calendars.get(account_id, normalise_email(email))
        space = self._resolve(space_ref)
        if calendar.space_id == space.space_id:
            return calendar.to_api()
        claimed = self._claim(space, account_id, calendar.email)
        previous_space_id = calendar.space_id
        calendar.link_to(claimed)
        try:
            self.calendars.save(calendar)
        except ConcurrencyConflict:
            self.spaces.release(claimed.space_id, account_id, calendar.email)
            raise ConcurrencyConflict(f"{calendar.email} was changed by someone else meanwhile; try again") from None
        if previous_space_id:
            self.spaces.release(previous_space_id, account_id, calendar.email)
        self._changed(account_id)
        self.audit.record(actor, "calendar.link", calendar.email, outcome="ok", account=account_id,
                          space=claimed.number)
        return calendar.to_api()

    def unlink(self, account_id: str, email: str, actor: str) -> dict[str, Any]:
        self.accounts.get(account_id)
        calendar = self.calendars.get(account_id, normalise_email(email))
        space_id, space_number = calendar.space_id, calendar.space_number
        if not space_id:
            return calendar.to_api()
        calendar.link_to(None)
        self.calendars.save(calendar)
        self.spaces.release(space_id, account_id, calendar.email)
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
        candidates = list(self.calendars.all_of(
            account_id, "status eq 'added' or status eq 'failed'"))
        queued = 0
        for start in range(0, len(candidates), MAX_BATCH_SIZE):
            chunk = candidates[start:start + MAX_BATCH_SIZE]
            for calendar in chunk:
                calendar.set_status(CalendarStatus.QUEUED, "waiting for the next connector run")
                calendar.next_attempt_at = None
                calendar.attempts = 0 if calendar.failure_kind is None else calendar.attempts
            try:
                queued += self.calendars.table.submit_in_batches(("update", c.to_entity()) for c in chunk)
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
        for calendar in list(self.calendars.all_of(account_id, "status eq 'failed'")):
            if calendar.failure_kind in AUTHORIZATION_FAILURE_KINDS:
                requeued += self._queue_one(account_id, calendar.email)
        self._changed(account_id)
        return requeued

