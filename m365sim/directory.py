"""The directory of a tenant as Entra and Graph show it: users, room mailboxes, room lists and
rooms (places), their stable ids, and the generator of large tenants.

Owns these records, their Graph JSON and the tenant spec format (the fixture's shape). It must
never hold mutable tenant state (consent, knobs, mailboxes live in state.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

# Stable ids: derived from the tenant and the address, so a reset or restart keeps them.
_ID_NAMESPACE = uuid.UUID("0f0e8c1a-5d1b-4d8e-9c0a-6d3b2f1e4a70")


def stable_id(*parts: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, ":".join(p.lower() for p in parts)))


@dataclass
class User:
    id: str
    user_principal_name: str
    mail: str
    display_name: str
    is_admin: bool = False
    is_room: bool = False

    def graph(self) -> dict[str, Any]:
        given, _, surname = self.display_name.partition(" ")
        return {
            "id": self.id,
            "displayName": self.display_name,
            "givenName": None if self.is_room else given,
            "surname": None if self.is_room else (surname or None),
            "mail": self.mail,
            "userPrincipalName": self.user_principal_name,
            "userType": "Member",
            "accountEnabled": not self.is_room,
            "jobTitle": None,
            "officeLocation": None,
            "businessPhones": [],
            "mobilePhone": None,
            "preferredLanguage": None,
        }


@dataclass
class RoomList:
    id: str
    email: str
    display_name: str

    def graph(self) -> dict[str, Any]:
        return {
            "@odata.type": "#microsoft.graph.roomList",
            "id": self.id,
            "displayName": self.display_name,
            "emailAddress": self.email,
            "address": None,
            "geoCoordinates": None,
            "phone": None,
        }


@dataclass
class Room:
    id: str
    email: str
    display_name: str
    building: str | None
    floor_number: int | None
    floor_label: str | None
    capacity: int | None
    booking_type: str = "standard"
    is_wheelchair_accessible: bool = False
    tags: list[str] = field(default_factory=list)
    nickname: str | None = None
    room_list: str | None = None
    hidden_from_places: bool = False

    def graph(self) -> dict[str, Any]:
        return {
            "@odata.type": "#microsoft.graph.room",
            "id": self.id,
            "emailAddress": self.email,
            "displayName": self.display_name,
            "nickname": self.nickname if self.nickname is not None else self.display_name,
            "building": self.building,
            "floorNumber": self.floor_number,
            "floorLabel": self.floor_label,
            "capacity": self.capacity,
            "bookingType": self.booking_type,
            "isWheelChairAccessible": self.is_wheelchair_accessible,
            "tags": list(self.tags),
            "label": None,
            "phone": None,
            "audioDeviceName": None,
            "videoDeviceName": None,
            "displayDeviceName": None,
            "address": None,
            "geoCoordinates": None,
        }


def parse_directory(spec: dict[str, Any], tenant_id: str) -> tuple[list[User], list[RoomList], list[Room]]:
    """Users (room mailboxes included), room lists and rooms of a tenant spec."""
    users: list[User] = []
    for entry in spec.get("users", []):
        upn = entry["userPrincipalName"]
        users.append(
            User(
                id=entry.get("id", stable_id(tenant_id, "user", upn)),
                user_principal_name=upn,
                mail=entry.get("mail", upn),
                display_name=entry.get("displayName", upn.split("@")[0]),
                is_admin=bool(entry.get("admin", False)),
            )
        )
    room_lists = [
        RoomList(
            id=entry.get("id", stable_id(tenant_id, "roomlist", entry["emailAddress"])),
            email=entry["emailAddress"],
            display_name=entry.get("displayName", entry["emailAddress"]),
        )
        for entry in spec.get("roomLists", [])
    ]
    list_emails = {r.email.lower() for r in room_lists}
    rooms: list[Room] = []
    for entry in spec.get("rooms", []):
        email = entry["emailAddress"]
        room_list = entry.get("roomList")
        if room_list is not None and room_list.lower() not in list_emails:
            raise ValueError(f"room {email} names unknown room list {room_list}")
        rooms.append(
            Room(
                id=entry.get("id", stable_id(tenant_id, "place", email)),
                email=email,
                display_name=entry.get("displayName", email.split("@")[0]),
                building=entry.get("building"),
                floor_number=entry.get("floorNumber"),
                floor_label=entry.get("floorLabel"),
                capacity=entry.get("capacity"),
                booking_type=entry.get("bookingType", "standard"),
                is_wheelchair_accessible=bool(entry.get("isWheelChairAccessible", False)),
                tags=list(entry.get("tags", [])),
                nickname=entry.get("nickname"),
                room_list=room_list,
                hidden_from_places=bool(entry.get("hiddenFromPlaces", False)),
            )
        )
        # Every room is also a room mailbox: a Member user with its own object id.
        users.append(
            User(
                id=entry.get("userId", stable_id(tenant_id, "user", email)),
                user_principal_name=email,
                mail=email,
                display_name=entry.get("displayName", email.split("@")[0]),
                is_room=True,
            )
        )
    return users, room_lists, rooms


def generate_tenant_spec(rooms: int, domain: str | None = None, tenant_id: str | None = None) -> dict[str, Any]:
    """A tenant spec (the fixture's shape) with `rooms` rooms, deterministic apart from the id.

    Users are `admin@<domain>` (Global Administrator) and `user@<domain>` (not an admin).
    Rooms are named `room-00042@<domain>`, spread over buildings of up to 200 rooms and floors of
    up to 20, each building with its own room list. Used by `POST /_sim/tenants` and benchmarks.
    """
    if rooms < 0:
        raise ValueError("rooms must not be negative")
    tenant_id = (tenant_id or str(uuid.uuid4())).lower()
    domain = (domain or f"t{tenant_id.replace('-', '')[:10]}.onmicrosoft.com").lower()
    per_building, per_floor = 200, 20
    building_count = max(1, -(-rooms // per_building))
    room_lists = [
        {"emailAddress": f"building-{b + 1:02d}-rooms@{domain}", "displayName": f"Building {b + 1:02d}"}
        for b in range(building_count)
    ]
    room_specs = []
    for i in range(rooms):
        building = i // per_building
        floor = (i % per_building) // per_floor + 1
        room_specs.append(
            {
                "emailAddress": f"room-{i:05d}@{domain}",
                "displayName": f"Room {i:05d}",
                "building": f"Building {building + 1:02d}",
                "floorNumber": floor,
                "floorLabel": f"Level {floor}",
                "capacity": 4 + (i % 17),
                "isWheelChairAccessible": i % 3 == 0,
                "tags": ["video"] if i % 4 == 0 else [],
                "roomList": room_lists[building]["emailAddress"],
            }
        )
    return {
        "id": tenant_id,
        "displayName": domain.split(".")[0],
        "domains": [domain],
        "users": [{"userPrincipalName": f"admin@{domain}", "displayName": "Tenant Admin", "admin": True},
                  {"userPrincipalName": f"user@{domain}", "displayName": "Tenant User", "admin": False}],
        "roomLists": room_lists,
        "rooms": room_specs,
    }
