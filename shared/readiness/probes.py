"""Asking Graph how far the app reaches in a tenant, and what each room mailbox is.

Owns two probes. The access probe finds a person's mailbox (a user of the tenant whose
`userPurpose` is `user`, not a room) and asks for its calendar's metadata only
(`GET /users/{id}/calendar?$select=id`): readable means the app can read every calendar in the
tenant; `ErrorAccessDenied` while a room's calendar still reads means it is scoped to rooms.
Nothing of that person's mailbox is read beyond that answer or kept. The room probe reads, for
up to six rooms per `$batch`, the directory entry, `mailboxSettings/userPurpose` and the
calendar's metadata, and says what is wrong with each: not found, not a room mailbox, not
reachable by Graph (on-premises or hybrid: `MailboxNotEnabledForRESTAPI`), denied by the app's
scope. It never writes.
https://learn.microsoft.com/exchange/permissions-exo/application-rbac
"""

from __future__ import annotations

import time
from typing import Any

from shared.graph import GraphClient, GraphError
from shared.graph.client import batch_item_error
from shared.graph.mailboxes import ROOMS_PER_BATCH, path_segment
from shared.readiness.model import Access, Finding, Kind
from shared.storage import Parallel

PEOPLE_TO_TRY = 25
BATCHES_IN_FLIGHT = 4
CHECK_SECONDS = 60.0
MAX_WAIT_SECONDS = 5.0

HYBRID_FIX = ("move the mailbox to Exchange Online (Graph cannot reach on-premises or hybrid mailboxes), or leave "
              "the room out")
SCOPE_FIX = ("the app's RBAC for Applications scope leaves this mailbox out: the RBAC script scopes the app to "
             "room mailboxes (RecipientTypeDetails RoomMailbox), so make it one (Set-Mailbox -Type Room) or leave it "
             "out; a scope just set takes Exchange 30 minutes to 2 hours to apply, then check again")


def probe_access(graph: GraphClient, tenant_id: str, rooms: set[str]) -> tuple[Access, str]:
    """(how far the app reaches, the detail an admin reads)."""
    person = _a_person(graph, tenant_id, rooms)
    if person is None:
        return Access.UNKNOWN, ("no person's mailbox was found to test with (the tenant lists no user that is "
                                "not a room), so it is unknown whether the app can read people's calendars")
    try:
        graph.get(tenant_id, f"users/{path_segment(person)}/calendar", {"$select": "id"},
                  max_wait_seconds=MAX_WAIT_SECONDS)
    except GraphError as error:
        if error.is_access_policy_denial:
            room_reads = _a_room_reads(graph, tenant_id, rooms)
            if room_reads:
                return Access.ROOMS_ONLY, (f"a person's calendar ({person}) is refused while the rooms' calendars "
                                           "read: the app is scoped to room mailboxes")
            return Access.UNKNOWN, (f"a person's calendar ({person}) is refused, but no room's calendar could be "
                                    "read either: check the scope includes the rooms")
        if error.is_transient:
            raise
        return Access.UNKNOWN, f"the probe of a person's calendar answered {error.status} {error.graph_code}"
    return Access.TENANT_WIDE, (f"the app read a person's calendar ({person}): admin consent grants it every "
                                "mailbox of the tenant")


def _a_person(graph: GraphClient, tenant_id: str, rooms: set[str]) -> str | None:
    """A user of the tenant whose mailbox is a person's: not a known room, `userPurpose` user."""
    page = graph.get(tenant_id, "users", {"$top": str(PEOPLE_TO_TRY), "$select": "id,mail,userPrincipalName"},
                     max_wait_seconds=MAX_WAIT_SECONDS) or {}
    candidates = [str(u.get("mail") or u.get("userPrincipalName") or "").lower() for u in page.get("value") or []]
    for address in [c for c in candidates if c and c not in rooms]:
        try:
            purpose = (graph.get(tenant_id, f"users/{path_segment(address)}/mailboxSettings/userPurpose",
                                 max_wait_seconds=MAX_WAIT_SECONDS) or {}).get("value")
        except GraphError as error:
            if error.is_missing_permission or error.is_access_policy_denial:
                # Without MailboxSettings.Read, or outside the app's scope (as people are once it is scoped
                # to rooms), a user that is not a known room is the person to try.
                return address
            continue  # no mailbox, or not reachable: try the next
        if purpose == "user":
            return address
    return None


def _a_room_reads(graph: GraphClient, tenant_id: str, rooms: set[str]) -> bool:
    for room in sorted(rooms)[:3]:
        try:
            graph.get(tenant_id, f"users/{path_segment(room)}/calendar", {"$select": "id"},
                      max_wait_seconds=MAX_WAIT_SECONDS)
            return True
        except GraphError:
            continue
    return False


def check_rooms(graph: GraphClient, tenant_id: str, emails: list[str], parallel: Parallel) -> dict[str, list[Finding]]:
    """Each room's findings (an empty list: nothing wrong). Rooms not reached within `CHECK_SECONDS`
    (or throttled) say so; every room named gets an answer."""
    deadline = time.monotonic() + CHECK_SECONDS
    chunks = [emails[i:i + ROOMS_PER_BATCH] for i in range(0, len(emails), ROOMS_PER_BATCH)]
    results: dict[str, list[Finding]] = {}
    for start in range(0, len(chunks), BATCHES_IN_FLIGHT):
        wave = chunks[start:start + BATCHES_IN_FLIGHT]
        if time.monotonic() > deadline:
            for chunk in wave:
                results.update({email: [_not_checked(email, "the check ran out of time")] for email in chunk})
            continue
        for found in parallel.run([lambda chunk=chunk: _check_chunk(graph, tenant_id, chunk) for chunk in wave]):
            results.update(found)
    return results


def _check_chunk(graph: GraphClient, tenant_id: str, emails: list[str]) -> dict[str, list[Finding]]:
    requests = []
    for number, email in enumerate(emails):
        address = path_segment(email)
        for read, url in (("user", f"/users/{address}?$select=id,mail"),
                          ("purpose", f"/users/{address}/mailboxSettings/userPurpose"),
                          ("calendar", f"/users/{address}/calendar?$select=id")):
            requests.append({"id": f"{number}-{read}", "method": "GET", "url": url})
    try:
        reply = graph.request(tenant_id, "POST", "$batch", json={"requests": requests},
                              max_wait_seconds=MAX_WAIT_SECONDS) or {}
    except GraphError as error:
        return {email: [_not_checked(email, f"Graph answered {error.status} {error.graph_code}")] for email in emails}
    answers = {str(item.get("id")): item for item in reply.get("responses") or [] if isinstance(item, dict)}
    return {email: _room_findings(email, *(answers.get(f"{n}-{read}") for read in ("user", "purpose", "calendar")))
            for n, email in enumerate(emails)}


def _room_findings(email: str, user: dict[str, Any] | None, purpose: dict[str, Any] | None,
                   calendar: dict[str, Any] | None) -> list[Finding]:
    if user is None or calendar is None or any(_status(item) in (429, 500, 502, 503, 504)
                                               for item in (user, purpose, calendar) if item is not None):
        return [_not_checked(email, "Microsoft Graph was busy (throttled); check again in a minute")]
    if _status(user) == 404:
        return [Finding(Kind.NOT_FOUND, "error", f"{email} was not found in the tenant",
                        "check the address (a typo, or the room was renamed or removed), then add it again", email)]
    findings: list[Finding] = []
    calendar_error = batch_item_error(calendar) if _status(calendar) >= 400 else None
    if calendar_error is not None and calendar_error.graph_code == "MailboxNotEnabledForRESTAPI":
        return [Finding(Kind.NOT_REACHABLE, "error", f"{email} is on-premises or hybrid: Microsoft Graph cannot reach "
                        "its calendar (MailboxNotEnabledForRESTAPI)", HYBRID_FIX, email)]
    if purpose is not None and _status(purpose) < 400:
        value = str((purpose.get("body") or {}).get("value") or "")
        if value and value != "room":
            findings.append(Finding(Kind.NOT_A_ROOM, "error", f"{email} is a{'n' if value[:1] in 'aeiou' else ''} "
                                    f"{value} mailbox, not a room mailbox",
                                    "add the room's own address; a person's or shared mailbox is not a room", email))
    elif purpose is not None and batch_item_error(purpose).is_missing_permission:
        findings.append(Finding(Kind.CANNOT_TELL_PURPOSE, "warning", f"whether {email} is a room mailbox could not "
                                "be told: the app lacks MailboxSettings.Read",
                                "grant MailboxSettings.Read to the app and re-authenticate the account", email))
    if calendar_error is not None:
        if calendar_error.is_access_policy_denial:
            findings.append(Finding(Kind.DENIED, "error", f"access to {email}'s calendar is denied by the app's scope "
                                    "(RBAC for Applications or an application access policy)", SCOPE_FIX, email))
        elif calendar_error.status == 404:
            findings.append(Finding(Kind.NOT_FOUND, "error", f"{email} has no Exchange Online mailbox "
                                    f"({calendar_error.graph_code})", HYBRID_FIX, email))
        else:
            findings.append(_not_checked(email, f"its calendar answered {calendar_error.status} "
                                                f"{calendar_error.graph_code}"))
    return findings


def _status(item: dict[str, Any]) -> int:
    return int(item.get("status") or 0)


def _not_checked(email: str, why: str) -> Finding:
    return Finding(Kind.NOT_CHECKED, "warning", f"{email} was not checked: {why}", "press Re-check", email)
