"""Graph's directory as the product reads it: `/organization`, `/users`, `/users/{id|upn}` and the
places of rooms and room lists (learn.microsoft.com/graph/api/resources/place).

Owns those routes and their permissions. It must never answer a mailbox resource
(`/users/{id}/calendar…`, events, mailboxSettings: graph_calendar.py does) and never change state.
"""

from __future__ import annotations

from m365sim.odata import (
    Call,
    Context,
    GraphResult,
    graph_error,
    insufficient_privileges,
    page,
    segment_not_found,
    select,
)
from m365sim.state import ORGANIZATION_READ_ROLES, PLACE_READ_ROLES, USER_READ_ROLES, SimState


class DirectoryApi:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def organization(self, ctx: Context) -> GraphResult:
        # Graph requires Organization.Read.All (or Directory.*) here; User.Read.All is not enough
        # (learn.microsoft.com/graph/api/organization-list).
        if not ctx.has_any(self.state, ORGANIZATION_READ_ROLES):
            return insufficient_privileges()
        tenant = ctx.tenant
        domains = [
            {"capabilities": "Email, OfficeCommunicationsOnline", "isDefault": i == 0,
             "isInitial": d.lower().endswith(".onmicrosoft.com"), "name": d, "type": "Managed"}
            for i, d in enumerate(tenant.domains)
        ]
        org = {"id": tenant.id, "displayName": tenant.display_name, "tenantType": "AAD", "verifiedDomains": domains}
        return GraphResult(200, {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#organization",
                                 "value": [org]})

    def users(self, call: Call, ctx: Context, segments: list[str], lowered: list[str]) -> GraphResult:
        if len(segments) == 1:
            if not ctx.has_any(self.state, USER_READ_ROLES):
                return insufficient_privileges()
            with self.state.lock:
                users = [u.graph() for u in ctx.tenant.users if ctx.tenant.find_user(u.id) is not None]
            return page(call, users, "users")
        key = segments[1]
        if len(segments) == 2:
            if not ctx.has_any(self.state, USER_READ_ROLES):
                return insufficient_privileges()
            with self.state.lock:
                user = ctx.tenant.find_user(key)
            if user is None:
                return graph_error(404, "Request_ResourceNotFound",
                                   f"Resource '{key}' does not exist or one of its queried reference-property "
                                   "objects are not present.")
            return GraphResult(200, {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
                                     **select(user.graph(), call.query)})
        return segment_not_found(segments[2])

    # -- places --------------------------------------------------------------------------------

    def places(self, call: Call, ctx: Context, segments: list[str], lowered: list[str]) -> GraphResult:
        if not ctx.has_any(self.state, PLACE_READ_ROLES):
            return insufficient_privileges()
        tenant = ctx.tenant
        if lowered == ["places", "microsoft.graph.room"]:
            # Rooms flagged hiddenFromPlaces emulate Graph's known partial /places results.
            with self.state.lock:
                rooms = [r.graph() for r in tenant.rooms if not r.hidden_from_places]
            return page(call, rooms, "places/microsoft.graph.room")
        if lowered == ["places", "microsoft.graph.roomlist"]:
            with self.state.lock:
                lists = [r.graph() for r in tenant.room_lists]
            return page(call, lists, "places/microsoft.graph.roomlist")
        if len(lowered) == 4 and lowered[2:] == ["microsoft.graph.roomlist", "rooms"]:
            wanted = segments[1].lower()
            with self.state.lock:
                room_list = next((r for r in tenant.room_lists if wanted in (r.email.lower(), r.id)), None)
                rooms = [r.graph() for r in tenant.rooms
                         if room_list is not None and (r.room_list or "").lower() == room_list.email.lower()]
            if room_list is None:
                return graph_error(404, "ErrorInvalidUser", f"The requested user '{segments[1]}' is invalid.")
            return page(call, rooms, "/".join(segments))
        if len(lowered) == 2:
            wanted = segments[1].lower()
            with self.state.lock:
                place = next((r.graph() for r in tenant.rooms if wanted in (r.email.lower(), r.id)), None) or next(
                    (r.graph() for r in tenant.room_lists if wanted in (r.email.lower(), r.id)), None)
            if place is None:
                return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            return GraphResult(200, {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#places/$entity",
                                     **select(place, call.query)})
        return graph_error(400, "BadRequest", "Unsupported places request.")
