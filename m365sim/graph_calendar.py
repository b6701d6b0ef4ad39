"""Graph's mailbox resources: `/users/{id}/calendar`, `/events`, `/calendar/events`,
`/calendarView` (learn.microsoft.com/graph/api/resources/calendar).

Owns those routes, their permissions and the mailbox policy checks. It must never hold
`SimState.lock` while calling out.
"""

from __future__ import annotations

import base64

from m365sim.access import resolve_mailbox
from m365sim.odata import (
    Call,
    Context,
    GraphResult,
    insufficient_privileges,
    method_not_allowed,
    page,
    segment_not_found,
)
from m365sim.state import CALENDAR_ROLES, SimState

MAILBOX_RESOURCES = (["calendar"], ["events"], ["calendar", "events"], ["calendarview"], ["calendar", "calendarview"])


class CalendarApi:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def handle(self, call: Call, ctx: Context, segments: list[str], lowered: list[str]) -> GraphResult:
        """`users/{key}/…` below the user: segments[0] is "users", segments[1] the mailbox."""
        rest = lowered[2:]
        if call.method != "GET":
            return method_not_allowed()
        if rest not in MAILBOX_RESOURCES:
            return segment_not_found(segments[2])
        if not ctx.has_any(self.state, CALENDAR_ROLES):
            return insufficient_privileges()
        user = resolve_mailbox(self.state, ctx.tenant, segments[1])
        if isinstance(user, GraphResult):
            return user
        if rest == ["calendar"]:
            return GraphResult(200, {
                "@odata.context": f"https://graph.microsoft.com/v1.0/$metadata#users('{user.id}')/calendar/$entity",
                "id": base64.urlsafe_b64encode(f"calendar:{user.id}".encode()).decode("ascii"),
                "name": "Calendar", "color": "auto", "isDefaultCalendar": True, "canEdit": True, "canShare": True,
                "canViewPrivateItems": True, "owner": {"name": user.display_name, "address": user.mail},
            })
        return page(call, [], "/".join(segments))
