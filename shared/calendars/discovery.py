"""Room discovery: the tenant's room mailboxes from Graph, each with the space it most likely is.

Owns turning Graph's rooms (`shared.graph.places`) into what the Discover dialog shows:
address, name, building, floor, capacity, whether it is added already, a suggested space
that is not linked yet, and what the last readiness check found for the room. It never adds
anything by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.accounts import AccountRepository
from shared.calendars.repository import CalendarRepository
from shared.errors import Conflict
from shared.graph import GraphClient, GraphError
from shared.graph.places import list_rooms
from shared.spaces import SpaceDirectory

EMPTY_EXPLANATION = (
    "Microsoft Graph listed no rooms. This happens when the tenant has no room mailboxes, when rooms are not in "
    "any room list, or when Place.Read.All was not granted. Add rooms by email or CSV instead, or ask the Exchange "
    "admin to put the rooms in a room list (New-DistributionGroup -RoomList)."
)


class RoomDiscovery:
    def __init__(self, *, graph: GraphClient, accounts: AccountRepository, calendars: CalendarRepository,
                 spaces: SpaceDirectory, findings: Callable[[str], dict[str, Any]] | None = None) -> None:
        self.findings = findings or (lambda account_id: {})
        self.graph = graph
        self.accounts = accounts
        self.calendars = calendars
        self.spaces = spaces

    def discover(self, account_id: str) -> dict[str, Any]:
        account = self.accounts.get(account_id)
        try:
            listing = list_rooms(self.graph, account.tenant_id)
        except GraphError as error:
            if error.is_missing_permission:
                raise Conflict("discovering rooms needs the Place.Read.All permission: grant it to the app and "
                               "re-authenticate the account") from None
            raise
        added = self.calendars.emails_of(account_id)
        known = self.findings(account_id)
        items = []
        for email, room in sorted(listing.rooms.items(),
                                  key=lambda item: (item[1].get("displayName") or item[0]).lower()):
            floor = room.get("floorLabel") or _text(room.get("floorNumber"))
            space, confidence = self.spaces.suggest(room.get("displayName") or "", email, room.get("building"), floor)
            items.append({
                "email": email,
                "display_name": room.get("displayName"),
                "building": room.get("building"),
                "floor": floor,
                "capacity": room.get("capacity"),
                "added": email in added,
                "readiness": known.get(email),
                "suggested_space": {**space.to_api(), "confidence": round(confidence, 2)}
                if space and not space.to_api().get("linked") else None,
            })
        return {
            "items": items,
            "sources": {"places": listing.from_places, "room_lists": listing.room_lists,
                        "rooms_in_lists": listing.rooms_in_lists},
            "note": EMPTY_EXPLANATION if not items else None,
        }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
