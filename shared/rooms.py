"""Room discovery: the tenant's room mailboxes from Graph, with suggested spaces.

Owns walking `/places/microsoft.graph.room` and, because Graph is known to return
an empty or partial list when rooms are not in a room list, every room list's
rooms too, de-duplicated by email. It never adds anything by itself.
https://learn.microsoft.com/graph/api/place-list
"""

from __future__ import annotations

from typing import Any

from shared.accounts import AccountRepository
from shared.calendars import CalendarRepository
from shared.errors import Conflict
from shared.graph import GraphClient, GraphError
from shared.spaces import SpaceDirectory

ROOM_FIELDS = "id,emailAddress,displayName,building,floorNumber,floorLabel,capacity,bookingType"
EMPTY_EXPLANATION = (
    "Microsoft Graph listed no rooms. This happens when the tenant has no room mailboxes, when rooms are not in "
    "any room list, or when Place.Read.All was not granted. Add rooms by email or CSV instead, or ask the Exchange "
    "admin to put the rooms in a room list (New-DistributionGroup -RoomList)."
)


class RoomDiscovery:
    def __init__(self, *, graph: GraphClient, accounts: AccountRepository, calendars: CalendarRepository,
                 spaces: SpaceDirectory) -> None:
        self.graph = graph
        self.accounts = accounts
        self.calendars = calendars
        self.spaces = spaces

    def discover(self, account_id: str) -> dict[str, Any]:
        account = self.accounts.get(account_id)
        tenant = account.tenant_id
        rooms: dict[str, dict[str, Any]] = {}
        try:
            from_places = self._collect(tenant, "places/microsoft.graph.room", rooms)
            room_lists = list(self.graph.get_all(tenant, "places/microsoft.graph.roomlist",
                                                 {"$select": "emailAddress,displayName"}))
            from_lists = 0
            for room_list in room_lists:
                address = room_list.get("emailAddress")
                if address:
                    from_lists += self._collect(tenant, f"places/{address}/microsoft.graph.roomlist/rooms", rooms)
        except GraphError as error:
            if error.is_missing_permission:
                raise Conflict("discovering rooms needs the Place.Read.All permission: grant it to the app and "
                               "re-authenticate the account") from None
            raise
        added = self.calendars.emails_of(account_id)
        items = []
        for email, room in sorted(rooms.items(), key=lambda item: (item[1].get("displayName") or item[0]).lower()):
            space, confidence = self.spaces.suggest(room.get("displayName") or "", email, room.get("building"),
                                                    room.get("floorLabel") or _text(room.get("floorNumber")))
            items.append({
                "email": email,
                "display_name": room.get("displayName"),
                "building": room.get("building"),
                "floor": room.get("floorLabel") or _text(room.get("floorNumber")),
                "capacity": room.get("capacity"),
                "added": email in added,
                "suggested_space": {**space.to_api(), "confidence": round(confidence, 2)}
                if space and not space.to_api().get("linked") else None,
            })
        return {
            "items": items,
            "sources": {"places": from_places, "room_lists": len(room_lists), "rooms_in_lists": from_lists},
            "note": EMPTY_EXPLANATION if not items else None,
        }

    def _collect(self, tenant: str, path: str, rooms: dict[str, dict[str, Any]]) -> int:
        count = 0
        for room in self.graph.get_all(tenant, path, {"$top": "100", "$select": ROOM_FIELDS}):
            email = (room.get("emailAddress") or "").strip().lower()
            if email:
                rooms.setdefault(email, room)
                count += 1
        return count


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
