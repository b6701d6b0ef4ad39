"""The Calendars table (PartitionKey = account id, RowKey = normalised email) and its queries.

Owns reading and writing calendar rows and every OData filter over them: callers ask for
"due for connection", "queued or failed", "a page of this account's calendars", not for a
filter string. Every replace is ETag-guarded; transactions are one account's rows (one
partition), all saved or none. It never decides a status or a link.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.calendars.model import Calendar
from shared.errors import ConcurrencyConflict, NotFound
from shared.models import CalendarStatus, iso
from shared.storage import Table

# The SDK substitutes a parameter only when whitespace follows it: never "@now)".
_DUE_FOR_CONNECTION = ("status eq 'queued' or status eq 'connecting' or "
                       "(next_attempt_at le @now and next_attempt_at ne '' and status eq 'failed') or "
                       "(subscription_expires_at le @renew and status eq 'connected') or "
                       "(reauthorize_requested eq true and status eq 'connected')")


@dataclass(frozen=True)
class CalendarPage:
    items: list[Calendar]
    continuation_token: str | None


class CalendarRepository:
    def __init__(self, table: Table) -> None:
        self.table = table

    # --- one calendar ----------------------------------------------------------------------

    def get(self, account_id: str, email: str) -> Calendar:
        entity = self.table.get(account_id, email)
        if entity is None:
            raise NotFound(f"{email} is not a calendar of this account")
        return Calendar.from_entity(entity)

    def find(self, account_id: str, email: str) -> Calendar | None:
        entity = self.table.get(account_id, email)
        return Calendar.from_entity(entity) if entity else None

    def find_many(self, account_id: str, emails: Iterable[str]) -> dict[str, Calendar]:
        """These calendars of the account that exist, by email (14 keys a query)."""
        found = self.table.get_many(account_id, emails)
        return {email: Calendar.from_entity(entity) for email, entity in found.items()}

    def add(self, calendar: Calendar) -> Calendar:
        saved = self.table.insert(calendar.to_entity(), exists_message=f"{calendar.email} is already added")
        calendar.etag = saved["_etag"]
        return calendar

    def save(self, calendar: Calendar) -> Calendar:
        saved = self.table.update(calendar.to_entity())
        calendar.etag = saved["_etag"]
        return calendar

    def change(self, calendar: Calendar, apply: Callable[[Calendar], bool], *, attempts: int = 5) -> Calendar | None:
        """Apply `apply` to the row and save it; when someone wrote it meanwhile, read it again and
        re-apply. `apply` answers False when the row as it now is needs nothing (nothing is saved).
        None when the row is gone, needs nothing, or kept changing for `attempts` tries."""
        current: Calendar | None = calendar
        for _ in range(attempts):
            if current is None or not apply(current):
                return None
            try:
                return self.save(current)
            except ConcurrencyConflict:
                current = self.find(calendar.account_id, calendar.email)
        return None

    def delete(self, calendar: Calendar, *, if_unchanged: bool = True) -> None:
        """Delete the row; with `if_unchanged` only if nobody wrote it since it was read."""
        self.table.delete(calendar.account_id, calendar.email, etag=calendar.etag if if_unchanged else None)

    # --- several of one account, in one transaction ----------------------------------------

    def add_many(self, calendars: Sequence[Calendar]) -> None:
        """Create calendars of one account in one transaction: all, or `Conflict` and none."""
        self.table.transact([("create", calendar.to_entity()) for calendar in calendars])

    def save_many(self, calendars: Sequence[Calendar]) -> list[Calendar]:
        """Save calendars of one account in one transaction, each only if unchanged since it
        was read: all are saved, or `ConcurrencyConflict` and none is."""
        saved = self.table.transact([("update", calendar.to_entity()) for calendar in calendars])
        for calendar, entity in zip(calendars, saved, strict=True):
            calendar.etag = entity["_etag"]
        return list(calendars)

    # --- queries ---------------------------------------------------------------------------

    def all_of(self, account_id: str) -> Iterator[Calendar]:
        yield from self._query(account_id)

    def in_status(self, account_id: str, *statuses: CalendarStatus) -> Iterator[Calendar]:
        clause = " or ".join(f"status eq '{status.value}'" for status in statuses)
        yield from self._query(account_id, clause)

    def due_for_connection(self, account_id: str, now: datetime, renew_before: datetime) -> Iterator[Calendar]:
        """Queued, connecting, failed with a retry that is due; connected whose subscription
        expires before `renew_before` or that Graph asked to reauthorize."""
        yield from self._query(account_id, _DUE_FOR_CONNECTION,
                               {"now": iso(now) or "", "renew": iso(renew_before) or ""})

    def page(self, account_id: str, *, status: CalendarStatus | None, linked: bool | None, email_prefix: str | None,
             page_size: int, continuation_token: str | None) -> CalendarPage:
        clauses = ["PartitionKey eq @account"]
        parameters: dict[str, Any] = {"account": account_id}
        if status is not None:
            clauses.append("status eq @status")
            parameters["status"] = status.value
        if linked is not None:
            clauses.append("space_id ne ''" if linked else "space_id eq ''")
        if email_prefix:
            # RowKey is the email: a prefix search is a key-range scan, not a table scan.
            clauses.append("RowKey ge @from and RowKey lt @to")
            parameters.update({"from": email_prefix, "to": email_prefix + "\uffff"})
        page = self.table.query_filled_page(" and ".join(clauses), parameters=parameters, page_size=page_size,
                                            continuation_token=continuation_token)
        return CalendarPage([Calendar.from_entity(e) for e in page.items], page.continuation_token)

    def statuses(self, account_id: str) -> Iterator[tuple[str, bool]]:
        """(status, linked) of every calendar of the account, reading two columns only."""
        for entity in self.table.query_all("PartitionKey eq @account", parameters={"account": account_id},
                                           select=["status", "space_id"]):
            yield entity.get("status") or CalendarStatus.ADDED.value, bool(entity.get("space_id"))

    def emails_of(self, account_id: str) -> set[str]:
        """Every calendar email of the account, reading keys only."""
        return {e["RowKey"] for e in self.table.query_all("PartitionKey eq @account",
                                                          parameters={"account": account_id}, select=["RowKey"])}

    def links_and_marks(self, account_id: str) -> Iterator[dict[str, Any]]:
        """Each calendar's email, space and import mark, reading those columns only (what an import
        needs to know of the calendars that exist)."""
        yield from self.table.query_all(
            "PartitionKey eq @a", parameters={"a": account_id},
            select=["RowKey", "space_id", "import_marker", "import_action", "import_previous_space_id"])

    def _query(self, account_id: str, clause: str = "", parameters: dict[str, Any] | None = None) -> Iterable[Calendar]:
        text = "PartitionKey eq @account" + (f" and ({clause})" if clause else "")
        for entity in self.table.query_all(text, parameters={"account": account_id, **(parameters or {})}):
            yield Calendar.from_entity(entity)
