"""Tenant readiness: how much of the tenant the app can read, each room checked, and the scripts that fix it.

Owns the readiness of one account: the check (the access probe, then each room — the account's
calendars, or the rooms Discover shows — then, from synced bookings, subjects that look
replaced by organizer names), the report the panel shows (findings with counts, `access`), and
the two scripts built for the account. A check is repeatable and answers within a bounded time;
rooms it could not reach say so. It never stores anything of a person's mailbox.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from shared.accounts import AccountRepository
from shared.bookings import BookingStore
from shared.calendars import CalendarRepository
from shared.errors import Conflict, Invalid
from shared.graph import GraphClient, GraphError
from shared.identifiers import normalise_email
from shared.models import AccountStatus, iso, utc_now
from shared.readiness.model import Access, Finding, Kind, ReadinessRecords, TenantAccess
from shared.readiness.probes import check_rooms, probe_access
from shared.readiness.scripts import rbac_script, room_settings_script
from shared.storage import Parallel

MAX_ROOMS_PER_CHECK = 2000
# Subjects replaced by the organizer's name: most of a room's recent, non-private bookings.
SUBJECT_SAMPLE = timedelta(days=14)
SUBJECT_SHARE = 0.6
SUBJECT_MINIMUM = 2

ACCESS_WORDS = {
    Access.TENANT_WIDE: Finding(Kind.TENANT_WIDE, "warning", "This app can read every calendar in the tenant",
                                "download the RBAC for Applications script, run it as an Exchange administrator, "
                                "and press Re-check once Exchange has applied it (30 minutes to 2 hours)"),
    Access.ROOMS_ONLY: Finding(Kind.SCOPED, "ok", "Scoped to room mailboxes"),
    Access.UNKNOWN: Finding(Kind.ACCESS_UNKNOWN, "warning", "Whether the app can read people's calendars is unknown",
                            "press Re-check; the detail says what stopped the probe"),
}


class Readiness:
    def __init__(self, *, graph: GraphClient, accounts: AccountRepository, calendars: CalendarRepository,
                 bookings: BookingStore, records: ReadinessRecords, parallel: Parallel, client_id: str) -> None:
        self.graph = graph
        self.accounts = accounts
        self.calendars = calendars
        self.bookings = bookings
        self.records = records
        self.parallel = parallel
        self.client_id = client_id

    # --- reading ----------------------------------------------------------------------------

    def report(self, account_id: str) -> dict[str, Any]:
        self.accounts.get(account_id)
        access = self.records.access(account_id)
        calendars = self.calendars.emails_of(account_id)
        # The account's rooms; rooms checked for Discover and not added are shown there instead.
        rooms = {email: found for email, found in self.records.rooms(account_id).items() if email in calendars}
        findings = (access.findings if access else []) + [f for _, found in rooms.values() for f in found]
        return {
            "account_id": account_id,
            "access": (access.access if access else Access.UNKNOWN).value,
            "access_detail": access.detail if access else "not checked yet: press Re-check",
            "checked_at": access.checked_at if access else None,
            "findings": [f.to_api() for f in findings],
            "counts": dict(Counter(f.kind.value for f in findings)),
            "rooms_checked": len(rooms),
            "rooms_with_findings": sum(1 for _, found in rooms.values() if found),
            "scripts": {"rbac": f"/api/accounts/{account_id}/readiness/rbac.ps1",
                        "room_settings": f"/api/accounts/{account_id}/readiness/room-settings.ps1"},
        }

    def room_findings(self, account_id: str) -> dict[str, list[dict[str, Any]]]:
        """The last check's findings per room (what Discover shows beside each room)."""
        return {email: [f.to_api() for f in found] for email, (_, found) in self.records.rooms(account_id).items()}

    # --- checking ---------------------------------------------------------------------------

    def check(self, account_id: str, rooms: Any = None) -> dict[str, Any]:
        """Probe the app's access and check rooms: those named, or every calendar of the account."""
        account = self.accounts.get(account_id)
        if account.status is not AccountStatus.VERIFIED:
            raise Conflict(f"the account {account.tenant_name} is {account.status.label.lower()}: authorize it first")
        known = sorted(self.calendars.emails_of(account_id))
        emails = known if rooms is None else _addresses(rooms)
        now = iso(utc_now()) or ""
        try:
            access, detail = probe_access(self.graph, account.tenant_id, set(known) | set(emails))
        except GraphError as error:
            access, detail = Access.UNKNOWN, f"Microsoft Graph answered {error.status} {error.graph_code}; try again"
        self.records.save_access(account_id, TenantAccess(access, detail, now, [
            Finding(ACCESS_WORDS[access].kind, ACCESS_WORDS[access].severity, ACCESS_WORDS[access].reason,
                    ACCESS_WORDS[access].fix)]))
        found = check_rooms(self.graph, account.tenant_id, emails, self.parallel)
        for email in known:
            if email in found and not any(f.kind in (Kind.NOT_FOUND, Kind.NOT_REACHABLE) for f in found[email]):
                found[email] += self._subjects(account_id, email)
        self.records.save_rooms(account_id, now, found)
        return self.report(account_id)

    def _subjects(self, account_id: str, email: str) -> list[Finding]:
        """A room whose bookings' subjects are mostly their organizers' names: the room's processing
        replaces them (AddOrganizerToSubject, DeleteSubject)."""
        now = utc_now()
        visible = [b for b in self.bookings.between(account_id, email, now - SUBJECT_SAMPLE, now + SUBJECT_SAMPLE)
                   if not b.is_private and b.organizer_name]
        replaced = [b for b in visible if _same_words(b.subject or "", b.organizer_name)]
        if len(replaced) < SUBJECT_MINIMUM or len(replaced) < SUBJECT_SHARE * len(visible):
            return []
        return [Finding(Kind.SUBJECTS_REPLACED, "warning",
                        f"{len(replaced)} of {len(visible)} recent bookings of {email} show the organizer's name "
                        "as their subject: the room replaces subjects (AddOrganizerToSubject, DeleteSubject)",
                        "run the room settings script for this room", email)]

    # --- scripts ----------------------------------------------------------------------------

    def rbac(self, account_id: str) -> tuple[str, str]:
        account = self.accounts.get(account_id)
        access = self.records.access(account_id)
        person = _probed(access.detail) if access else None
        rooms = sorted(self.calendars.emails_of(account_id))
        return (f"rbac-{_file_name(account.tenant_name)}.ps1",
                rbac_script(tenant_id=account.tenant_id, client_id=self.client_id, person=person,
                            room=rooms[0] if rooms else None))

    def room_settings(self, account_id: str, rooms: str | None, external: str | None) -> tuple[str, str]:
        account = self.accounts.get(account_id)
        known = self.calendars.emails_of(account_id)
        chosen = _addresses(rooms.split(",")) if rooms else sorted(known)
        strangers = [email for email in chosen if email not in known]
        if strangers:
            raise Invalid(f"{strangers[0]} is not a calendar of this account: the script is for its rooms")
        if not chosen:
            raise Conflict("the account has no room calendars yet: add rooms first")
        if external not in (None, "", "true", "false"):
            raise Invalid("external must be true or false")
        return (f"room-settings-{_file_name(account.tenant_name)}.ps1",
                room_settings_script(rooms=chosen, process_external=external == "true"))


def _addresses(values: Iterable[Any]) -> list[str]:
    if not isinstance(values, list | tuple) and not hasattr(values, "__iter__"):
        raise Invalid("rooms must be a list of email addresses")
    addresses = sorted({normalise_email(value) for value in values})
    if len(addresses) > MAX_ROOMS_PER_CHECK:
        raise Invalid(f"check at most {MAX_ROOMS_PER_CHECK:,} rooms at a time")
    return addresses


def _file_name(tenant_name: str) -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", tenant_name.lower()).strip("-.") or "tenant"


def _probed(detail: str) -> str | None:
    found = re.search(r"\(([^()\s]+@[^()\s]+)\)", detail)
    return found.group(1) if found else None


def _same_words(subject: str, name: str) -> bool:
    return subject.casefold().split() == name.casefold().split() and bool(subject.strip())
