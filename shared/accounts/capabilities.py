"""What the app can do in a tenant, found by asking Graph rather than by reading the token.

Owns the application permissions the product asks for (and what each is for) and the probes
that show which of them work: list rooms, read mailboxes, read a room's calendar. Microsoft
advises against parsing tokens for APIs you don't own, so the token's `roles` are only a hint.
It never stores anything; callers keep the result on the account.
"""

from __future__ import annotations

from typing import Any

from shared.accounts.model import Capability
from shared.graph import GraphClient, GraphError

# The application permissions the product asks for, and what each is for.
REQUIRED_PERMISSIONS = {
    "Place.Read.All": "list the tenant's rooms and room lists (discover rooms)",
    "User.Read.All": "find each room's mailbox",
    "Calendars.ReadWrite": "subscribe to room calendars' changes, read their bookings and write bookings back",
    "MailboxSettings.Read": "tell room mailboxes from people's (mailboxSettings.userPurpose) in readiness checks",
}


def probe_capabilities(graph: GraphClient, tenant_id: str) -> list[Capability]:
    """Which of the product's capabilities work in the tenant, by asking Graph.

    Raises GraphError only when Graph could not be reached at all."""
    results: list[Capability] = []
    room_email: str | None = None

    def probe(name: str, permission: str, path: str, params: dict[str, str]) -> Any:
        try:
            body = graph.get(tenant_id, path, params)
        except GraphError as error:
            if error.status == 0 or error.is_transient:
                raise
            detail = f"{error.graph_code}: {error.message}"
            results.append(Capability(name, permission, False, detail[:300]))
            return None
        results.append(Capability(name, permission, True))
        return body

    rooms = probe("list rooms", "Place.Read.All", "places/microsoft.graph.room", {"$top": "1"})
    if rooms and rooms.get("value"):
        room_email = rooms["value"][0].get("emailAddress")
    users = probe("read mailboxes", "User.Read.All", "users", {"$top": "1", "$select": "id,mail"})
    if room_email is None and users and users.get("value"):
        room_email = users["value"][0].get("mail") or users["value"][0].get("id")
    if room_email:
        try:
            graph.get(tenant_id, f"users/{room_email}/calendar", {"$select": "id"})
            results.append(Capability("read room calendars", "Calendars.ReadWrite", True))
        except GraphError as error:
            if error.status == 0 or error.is_transient:
                raise
            if error.is_access_policy_denial:
                results.append(Capability(
                    "read room calendars", "", True,
                    "limited by the tenant's application access policy: only rooms in its scope will connect"))
            elif error.status == 404:
                results.append(Capability("read room calendars", "Calendars.ReadWrite", True,
                                          "not checked: no mailbox to try it on"))
            else:
                results.append(Capability("read room calendars", "Calendars.ReadWrite", False,
                                          f"{error.graph_code}: {error.message}"[:300]))
    return results
