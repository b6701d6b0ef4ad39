"""Graph's mailbox resources: `/users/{id|upn}/calendar`, `calendarView` (and its `delta`),
`events` (list, create, get, update, delete, `instances`, `cancel`) with or without the
`/calendar` prefix, and `mailboxSettings` (learn.microsoft.com/graph/api/resources/calendar,
learn.microsoft.com/graph/api/resources/event).

Owns those routes, the permissions each needs, mailbox policy (access.py), Graph's query
parameters and headers for them (`startDateTime`/`endDateTime`, `$top`, `Prefer:
odata.maxpagesize`, `Prefer: outlook.timezone`), publishing committed writes to the notifier and
`stall_after_commit`. It must never hold `SimState.lock` while rendering, notifying or stalling.
"""

from __future__ import annotations

import base64
import datetime as dt
import time
from typing import Any

from m365sim import event_json
from m365sim.access import CALENDAR_WRITE_ROLES, MAILBOX_SETTINGS_ROLES, may_write, resolve_mailbox
from m365sim.delta import DeltaSync, Page
from m365sim.events import EventInvalid, Occurrence, as_occurrence, occurrences, read_fields, read_recurrence
from m365sim.graph_mailbox_settings import mailbox_settings
from m365sim.mailbox import Change, Mailbox, NewEvent, SyncStateGone
from m365sim.notifier import Notifier
from m365sim.odata import (
    Call,
    Context,
    GraphResult,
    graph_error,
    insufficient_privileges,
    json_body,
    method_not_allowed,
    page,
    parse_graph_time,
    segment_not_found,
    select,
)
from m365sim.state import CALENDAR_ROLES, SimState, User
from m365sim.timezones import preferred_zone

# calendarView and events answer 10 a page unless asked (learn.microsoft.com/graph/paging).
DEFAULT_EVENT_PAGE = 10
MAX_EVENT_PAGE = 1000
_READS = {("calendar", "GET"), ("calendarview", "GET"), ("delta", "GET"), ("events", "GET"), ("event", "GET"),
          ("instances", "GET"), ("settings", "GET")}
_WRITES = {("events", "POST"), ("event", "PATCH"), ("event", "DELETE"), ("cancel", "POST")}


def _resource(rest: list[str]) -> tuple[str, int | None] | None:
    """(kind of resource, index of the event id in the path) for what follows users/{key}/."""
    if rest[:1] == ["calendar"] and len(rest) > 1 and rest[1] in ("events", "calendarview"):
        rest, shift = rest[1:], 3
    else:
        shift = 2
    if rest == ["calendar"]:
        return "calendar", None
    if rest == ["calendarview"]:
        return "calendarview", None
    if rest == ["calendarview", "delta"]:
        return "delta", None
    if rest == ["events"]:
        return "events", None
    if len(rest) == 2 and rest[0] == "events":
        return "event", shift + 1
    if len(rest) == 3 and rest[0] == "events" and rest[2] == "instances":
        return "instances", shift + 1
    if len(rest) == 3 and rest[0] == "events" and rest[2] in ("cancel", "microsoft.graph.cancel"):
        return "cancel", shift + 1
    if rest[:1] == ["mailboxsettings"] and len(rest) <= 2:
        return "settings", None
    return None


class CalendarApi:
    def __init__(self, state: SimState, notifier: Notifier, delta: DeltaSync) -> None:
        self.state = state
        self.notifier = notifier
        self.delta = delta

    def handle(self, call: Call, ctx: Context, segments: list[str], lowered: list[str]) -> GraphResult:
        """`users/{key}/…` below the user: segments[0] is "users", segments[1] the mailbox."""
        found = _resource(lowered[2:])
        if found is None:
            return segment_not_found(segments[2])
        kind, id_index = found
        item_id = segments[id_index] if id_index is not None else ""
        write = (kind, call.method) in _WRITES
        if not write and (kind, call.method) not in _READS:
            return method_not_allowed()
        roles = MAILBOX_SETTINGS_ROLES if kind == "settings" else CALENDAR_WRITE_ROLES if write else CALENDAR_ROLES
        if not ctx.has_any(self.state, roles):
            return insufficient_privileges()
        user = resolve_mailbox(self.state, ctx.tenant, segments[1])
        if isinstance(user, GraphResult):
            return user
        if write:
            refused = may_write(self.state, ctx.tenant, user)
            if refused is not None:
                return refused
        if kind == "settings":
            return mailbox_settings(self.state, ctx.tenant, user, lowered[3:], call)
        if kind == "calendar":
            return _calendar(user)
        mailbox = self.state.mailbox(ctx.tenant, user)
        try:
            if write:
                return self._write(call, ctx, user, mailbox, kind, item_id)
            return self._read(call, segments, mailbox, kind, item_id)
        except EventInvalid as exc:
            return graph_error(exc.status, exc.code, exc.message)

    # -- reads ----------------------------------------------------------------------------------

    def _read(self, call: Call, segments: list[str], mailbox: Mailbox, kind: str, item_id: str) -> GraphResult:
        zone = preferred_zone(call.prefer())
        if kind == "delta":
            return self._delta(call, segments, mailbox, zone)
        if kind == "event":
            return _answer(200, event_json.render(mailbox.lookup(item_id), zone), zone, call)
        if kind == "events":
            stored = [as_occurrence(event) for event in mailbox.stored()]
            return self._page(call, segments, stored, zone)
        window = _window(call)
        if isinstance(window, GraphResult):
            return window
        if kind == "instances":
            master = mailbox.lookup(item_id).event
            found = sorted(occurrences(master, *window), key=lambda item: (item.fields.start, item.id))
        else:
            found = mailbox.view(*window)
        return self._page(call, segments, found, zone)

    @staticmethod
    def _page(call: Call, segments: list[str], found: list[Occurrence],
              zone: tuple[str, dt.tzinfo] | None) -> GraphResult:
        answer = page(call, found, "/".join(segments), DEFAULT_EVENT_PAGE, MAX_EVENT_PAGE, honour_prefer=True,
                      render=lambda item: event_json.render(item, zone))
        return _with_zone(answer, zone)

    def _delta(self, call: Call, segments: list[str], mailbox: Mailbox,
               zone: tuple[str, dt.tzinfo] | None) -> GraphResult:
        # calendarView/delta takes no query options; its page size comes from Prefer only.
        unsupported = [k for k in call.query if k.lower() in ("$select", "$filter", "$orderby", "$expand",
                                                                "$search")]
        if unsupported:
            return graph_error(400, "ErrorInvalidUrlQuery", f"The query parameter '{unsupported[0]}' is not "
                               "supported with delta.")
        preferred = call.prefer().get("odata.maxpagesize", "")
        size = min(int(preferred), MAX_EVENT_PAGE) if preferred.isdigit() and int(preferred) > 0 \
            else DEFAULT_EVENT_PAGE
        try:
            if call.query.get("$deltatoken") is not None:
                position = self.delta.from_delta_token(mailbox, call.query["$deltatoken"])
            elif call.query.get("$skiptoken") is not None:
                position = self.delta.from_skip_token(mailbox, call.query["$skiptoken"])
            else:
                window = _window(call)
                if isinstance(window, GraphResult):
                    return window
                position = self.delta.start(mailbox, *window)
            result: Page = self.delta.page(mailbox, position, size)
        except SyncStateGone:
            return graph_error(410, "syncStateNotFound", "The sync state is not found or has expired. Start a new "
                               "round without a token.")
        link = f"{call.base_url}/{'/'.join(segments[:2])}/calendarView/delta"
        body: dict[str, Any] = {
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(event)",
            "value": [event_json.removed(item) if isinstance(item, str) else event_json.render(item, zone)
                      for item in result.items],
        }
        if result.skip_token:
            body["@odata.nextLink"] = f"{link}?$skiptoken={result.skip_token}"
        else:
            body["@odata.deltaLink"] = f"{link}?$deltatoken={result.delta_token}"
        answer = _with_zone(GraphResult(200, body), zone)
        applied = [answer.headers.get("Preference-Applied"), f"odata.maxpagesize={size}", "odata.track-changes"]
        answer.headers["Preference-Applied"] = ", ".join(p for p in applied if p)
        return answer

    # -- writes ---------------------------------------------------------------------------------

    def _write(self, call: Call, ctx: Context, user: User, mailbox: Mailbox, kind: str, item_id: str) -> GraphResult:
        zone = preferred_zone(call.prefer())
        body = json_body(call)
        if call.method in ("POST", "PATCH") and kind != "cancel" and not isinstance(body, dict):
            return graph_error(400, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type "
                               "header is set and payload is of valid JSON format.")
        if kind == "events":
            fields = read_fields(body, None)
            transaction_id = body.get("transactionId")
            organizer = {"name": user.display_name, "address": user.mail}
            new = NewEvent(fields, read_recurrence(body, fields), organizer, True, "organizer",
                           transaction_id if isinstance(transaction_id, str) else None)
            event, change = mailbox.create(new)
            result = _answer(201, event_json.render(as_occurrence(event), zone), zone, call)
        elif kind == "event" and call.method == "PATCH":
            updated, change = mailbox.update(item_id, body)
            result = _answer(200, event_json.render(updated, zone), zone, call)
        else:
            change = mailbox.delete(item_id, organizer_only=kind == "cancel")
            result = GraphResult(202 if kind == "cancel" else 204)
        if change is not None:
            self._committed(ctx, user, [change])
        return result

    def _committed(self, ctx: Context, user: User, changes: list[Change]) -> None:
        self.notifier.publish(ctx.tenant, user, changes)
        with self.state.lock:
            knobs = ctx.tenant.knobs
            stall = knobs.stall_after_commit > 0
            if stall:
                knobs.stall_after_commit -= 1
            seconds = knobs.stall_seconds
        if stall:
            # Committed and notified; the answer is late, as when a client times out on Graph.
            time.sleep(seconds)


def _calendar(user: User) -> GraphResult:
    return GraphResult(200, {
        "@odata.context": f"https://graph.microsoft.com/v1.0/$metadata#users('{user.id}')/calendar/$entity",
        "id": base64.urlsafe_b64encode(f"calendar:{user.id}".encode()).decode("ascii"),
        "name": "Calendar", "color": "auto", "isDefaultCalendar": True, "canEdit": True, "canShare": True,
        "canViewPrivateItems": True, "owner": {"name": user.display_name, "address": user.mail},
    })


def _window(call: Call) -> tuple[dt.datetime, dt.datetime] | GraphResult:
    query = {k.lower(): v for k, v in call.query.items()}
    start, end = parse_graph_time(query.get("startdatetime")), parse_graph_time(query.get("enddatetime"))
    if start is None or end is None:
        return graph_error(400, "ErrorInvalidParameter", "This request requires a time window specified by the "
                           "query string parameters StartDateTime and EndDateTime.")
    return dt.datetime.fromtimestamp(start, dt.UTC), dt.datetime.fromtimestamp(end, dt.UTC)


def _answer(status: int, item: dict[str, Any], zone: tuple[str, dt.tzinfo] | None, call: Call) -> GraphResult:
    body = {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/events/$entity",
            **select(item, call.query)}
    return _with_zone(GraphResult(status, body), zone)


def _with_zone(result: GraphResult, zone: tuple[str, dt.tzinfo] | None) -> GraphResult:
    if zone is not None and result.status < 300:
        result.headers["Preference-Applied"] = f'outlook.timezone="{zone[0]}"'
    return result
