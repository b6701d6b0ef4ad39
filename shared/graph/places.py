"""The tenant's rooms as Graph's places list them, room lists included.

Owns walking `/places/microsoft.graph.room` and, because Graph is known to return an empty or
partial list when rooms are not in a room list, every room list's rooms too, de-duplicated by
email. It never adds anything and never reads a table.
https://learn.microsoft.com/graph/api/place-list
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.graph.client import GraphClient

ROOM_FIELDS = "id,emailAddress,displayName,building,floorNumber,floorLabel,capacity,bookingType"


@dataclass
class RoomListing:
    """The rooms found (by lower-cased email) and where they came from."""

    rooms: dict[str, dict[str, Any]] = field(default_factory=dict)
    from_places: int = 0
    room_lists: int = 0
    rooms_in_lists: int = 0


def list_rooms(graph: GraphClient, tenant_id: str) -> RoomListing:
    """Every room of the tenant; raises GraphError as Graph answers (a missing Place.Read.All is 403)."""
    listing = RoomListing()
    listing.from_places = _collect(graph, tenant_id, "places/microsoft.graph.room", listing.rooms)
    room_lists = list(graph.get_all(tenant_id, "places/microsoft.graph.roomlist",
                                    {"$select": "emailAddress,displayName"}))
    listing.room_lists = len(room_lists)
    for room_list in room_lists:
        address = room_list.get("emailAddress")
        if address:
            listing.rooms_in_lists += _collect(graph, tenant_id, f"places/{address}/microsoft.graph.roomlist/rooms",
                                               listing.rooms)
    return listing


def _collect(graph: GraphClient, tenant_id: str, path: str, rooms: dict[str, dict[str, Any]]) -> int:
    count = 0
    for room in graph.get_all(tenant_id, path, {"$top": "100", "$select": ROOM_FIELDS}):
        email = (room.get("emailAddress") or "").strip().lower()
        if email:
            rooms.setdefault(email, room)
            count += 1
    return count
