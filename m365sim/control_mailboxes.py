"""The control API for mailbox calendars: what happens in Outlook without the product (someone
books, moves or cancels a room), what a mailbox holds, bulk seeding for benchmarks, expiring
delta tokens, and the change-notification delivery log.

Owns `/_sim/tenants/{t}/mailboxes/{email}/events[/{id}]`, `/_sim/tenants/{t}/events/bulk`,
`/_sim/tenants/{t}/delta/expire` and `/_sim/notifications`, and the room processing rule
`organizer_as_subject_mailboxes` (Exchange's AddOrganizerToSubject + DeleteSubject). It must
never be reachable under a Microsoft path, and never hold `SimState.lock` while notifying.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from werkzeug.wrappers import Request, Response

from m365sim import event_json
from m365sim.events import EventFields, EventInvalid, as_occurrence, read_fields, read_recurrence
from m365sim.mailbox import NewEvent, Rewrite
from m365sim.notifier import Notifier
from m365sim.state import SimState, Tenant, User, format_graph_time

MAX_BULK_EVENTS = 500_000


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _error(status: int, code: str, message: str) -> Response:
    return _json(status, {"error": {"code": code, "message": message}})


class MailboxControl:
    def __init__(self, state: SimState, notifier: Notifier) -> None:
        self.state = state
        self.notifier = notifier

    def handle(self, request: Request, segments: list[str], body: dict[str, Any]) -> Response | None:
        """Answer the calls this module owns (`segments` follow /_sim/); None for any other."""
        method = request.method
        if segments == ["notifications"] and method == "GET":
            return self._notifications(request)
        if len(segments) < 3 or segments[0] != "tenants":
            return None
        tenant = self.state.tenant_by_name(segments[1])
        rest = segments[2:]
        if tenant is None:
            return None
        if rest == ["events", "bulk"] and method == "POST":
            return self._bulk(tenant, body)
        if rest == ["delta", "expire"] and method == "POST":
            return self._expire(tenant, body)
        if len(rest) in (3, 4) and rest[0] == "mailboxes" and rest[2] == "events":
            with self.state.lock:
                user = tenant.user_by_key(rest[1])
            if user is None:
                return _error(404, "not_found", f"no mailbox {rest[1]} in tenant {tenant.id}")
            try:
                return self._events(tenant, user, method, rest[3] if len(rest) == 4 else None, body)
            except EventInvalid as exc:
                return _error(exc.status, exc.code, exc.message)
        return None

    def _events(self, tenant: Tenant, user: User, method: str, item_id: str | None,
                body: dict[str, Any]) -> Response | None:
        mailbox = self.state.mailbox(tenant, user)
        if item_id is None and method == "GET":
            return _json(200, {"value": [event_json.render(as_occurrence(e), None) for e in mailbox.stored()]})
        if item_id is None and method == "POST":
            event, change = mailbox.create(self._booking(tenant, user, body))
            if change is not None:
                self.notifier.publish(tenant, user, [change])
            return _json(201, event_json.render(as_occurrence(event), None))
        if item_id is not None and method == "GET":
            return _json(200, event_json.render(mailbox.lookup(item_id), None))
        if item_id is not None and method == "PATCH":
            organizer = mailbox.lookup(item_id).event.organizer
            updated, change = mailbox.update(item_id, body, self._rewrite(tenant, user, organizer))
            self.notifier.publish(tenant, user, [change])
            return _json(200, event_json.render(updated, None))
        if item_id is not None and method == "DELETE":
            self.notifier.publish(tenant, user, [mailbox.delete(item_id)])
            return Response(status=204)
        return None

    def _booking(self, tenant: Tenant, user: User, body: dict[str, Any]) -> NewEvent:
        """An invitation arriving from Outlook: organized by someone else (a person of the tenant
        unless `organizer` says who), the room accepted it (AutomateProcessing AutoAccept)."""
        fields = read_fields(body, None)
        organizer = self._organizer(tenant, body.get("organizer"))
        own = organizer["address"].lower() == user.mail.lower()
        if not own and not any(a["emailAddress"]["address"].lower() == user.mail.lower() for a in fields.attendees):
            attendee = {"type": "resource" if user.is_room else "required",
                        "status": {"response": "accepted", "time": format_graph_time(fields.start.timestamp())},
                        "emailAddress": {"name": user.display_name, "address": user.mail}}
            fields = replace(fields, attendees=(*fields.attendees, attendee))
        rewrite = self._rewrite(tenant, user, organizer)
        fields = rewrite(fields) if rewrite else fields
        transaction_id = body.get("transactionId")
        return NewEvent(fields, read_recurrence(body, fields), organizer, own, "organizer" if own else "accepted",
                        transaction_id if isinstance(transaction_id, str) else None)

    def _organizer(self, tenant: Tenant, value: Any) -> dict[str, str]:
        email = value.get("emailAddress") if isinstance(value, dict) else None
        if isinstance(email, dict) and isinstance(email.get("address"), str) and email["address"]:
            return {"name": str(email.get("name") or email["address"]), "address": email["address"]}
        with self.state.lock:
            people = [u for u in tenant.users if not u.is_room]
        person = next((u for u in people if not u.is_admin), people[0] if people else None)
        if person is None:
            raise EventInvalid("bad_request", "the tenant has no person to organize the meeting: give organizer")
        return {"name": person.display_name, "address": person.mail}

    def _rewrite(self, tenant: Tenant, user: User, organizer: Mapping[str, str]) -> Rewrite | None:
        with self.state.lock:
            listed = tenant.listed(user, tenant.knobs.organizer_as_subject_mailboxes)
        if not listed:
            return None
        name = str(organizer.get("name") or organizer.get("address") or "")

        def organizer_as_subject(fields: EventFields) -> EventFields:
            # The room's copy shows the organizer instead of the subject (AddOrganizerToSubject + DeleteSubject).
            return replace(fields, subject=name)

        return organizer_as_subject

    def _bulk(self, tenant: Tenant, body: dict[str, Any]) -> Response:
        by_mailbox, notify = body.get("mailboxes"), body.get("notify", False)
        if not isinstance(by_mailbox, dict) or not isinstance(notify, bool):
            return _error(400, "bad_request", "mailboxes must map emails to lists of events; notify is a boolean")
        prepared: list[tuple[User, list[NewEvent]]] = []
        total = 0
        for email, events in by_mailbox.items():
            with self.state.lock:
                user = tenant.user_by_key(str(email))
            if user is None or not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
                return _error(400, "bad_request", f"{email}: not a mailbox of the tenant, or not a list of events")
            total += len(events)
            if total > MAX_BULK_EVENTS:
                return _error(400, "bad_request", f"at most {MAX_BULK_EVENTS} events at once")
            try:
                prepared.append((user, [self._booking(tenant, user, event) for event in events]))
            except EventInvalid as exc:
                return _error(400, exc.code, f"{email}: {exc.message}")
        created = 0
        for user, batch in prepared:
            changes = self.state.mailbox(tenant, user).create_many(batch)
            created += len(changes)
            if notify:
                self.notifier.publish(tenant, user, changes)
        return _json(201, {"created": created})

    def _expire(self, tenant: Tenant, body: dict[str, Any]) -> Response:
        emails = body.get("mailboxes")
        with self.state.lock:
            if emails is None:
                mailboxes = list(tenant.mailboxes.values())
            elif isinstance(emails, list) and all(isinstance(e, str) for e in emails):
                users = [tenant.user_by_key(e) for e in emails]
                if any(u is None for u in users):
                    return _error(404, "not_found", "every mailbox must belong to the tenant")
                mailboxes = [tenant.mailbox(u) for u in users if u is not None]
            else:
                return _error(400, "bad_request", "mailboxes must be a list of emails")
        for mailbox in mailboxes:
            mailbox.expire_tokens()
        return _json(200, {"expired": len(mailboxes)})

    def _notifications(self, request: Request) -> Response:
        since_text = request.args.get("since", "0")
        if not since_text.isdigit():
            return _error(400, "bad_request", "since must be a sequence number")
        tenant_name = request.args.get("tenant")
        tenant_id = None
        if tenant_name:
            tenant = self.state.tenant_by_name(tenant_name)
            tenant_id = tenant.id if tenant else tenant_name.lower()
        return _json(200, {"value": self.notifier.log_since(int(since_text), tenant_id)})
