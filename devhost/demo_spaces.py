"""Deterministic spaces for the demo and for benchmarks.

Owns the demo organisation's buildings, floors and spaces (`demo_spaces()`: three
buildings, a few hundred spaces, including the demo tenant's rooms such as
Orchard `SG-03-014`, Sentosa and Marina Bay) and a seeded generator of any size
(`generated_spaces(count, seed)`) for load tests. Rows have the shape
`SpaceDirectory.import_spaces` takes. It never touches storage and never uses
randomness that is not seeded: the same call returns the same rows.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

# A fixed namespace so a space number always maps to the same opaque space id.
_ID_NAMESPACE = uuid.UUID("5b0e7c1e-2f43-4c1b-9a57-2d8f0c6f3a11")

# (building id, building name, number prefix, floors, spaces per floor)
DEMO_BUILDINGS = (
    ("sg-hq", "Singapore HQ", "SG", 6, 25),
    ("london", "London", "LDN", 5, 20),
    ("sydney", "Sydney", "SYD", 4, 20),
)

# The rooms the demo tenant's mailboxes are named after: (number, name, type, capacity).
NAMED_ROOMS = {
    "sg-hq": (
        ("SG-03-014", "Orchard", "meeting room", 10),
        ("SG-03-015", "Sentosa", "meeting room", 8),
        ("SG-03-016", "Marina Bay", "meeting room", 16),
        ("SG-02-004", "Raffles", "boardroom", 20),
        ("SG-02-005", "Bugis", "meeting room", 6),
        ("SG-04-010", "Changi", "meeting room", 12),
        ("SG-04-011", "Clarke Quay", "meeting room", 8),
        ("SG-05-003", "Tiong Bahru", "meeting room", 6),
        ("SG-05-004", "Dempsey", "meeting room", 4),
        ("SG-06-001", "Katong", "meeting room", 10),
    ),
    "london": (
        ("LDN-01-002", "Thames", "meeting room", 12),
        ("LDN-02-003", "Camden", "meeting room", 8),
        ("LDN-03-001", "Greenwich", "boardroom", 18),
    ),
    "sydney": (
        ("SYD-01-002", "Bondi", "meeting room", 8),
        ("SYD-02-002", "Manly", "meeting room", 6),
        ("SYD-03-001", "Harbour", "boardroom", 16),
    ),
}

# Everything that is not a named room: (type, name pattern, capacity).
_KINDS = (
    ("desk", "Desk {floor}.{room}", 1),
    ("desk", "Desk {floor}.{room}", 1),
    ("desk", "Desk {floor}.{room}", 1),
    ("phone booth", "Phone Booth {floor}.{room}", 1),
    ("focus room", "Focus Room {floor}.{room}", 2),
    ("meeting room", "Meeting Room {floor}.{room}", 6),
)


def space_id_for(number: str) -> str:
    """The opaque, stable id the workplace system would give the space with this number."""
    return "spc-" + uuid.uuid5(_ID_NAMESPACE, number.casefold()).hex[:12]


def _row(building_id: str, building_name: str, floor: int, number: str, name: str, kind: str,
         capacity: int) -> dict[str, Any]:
    return {
        "id": space_id_for(number),
        "building_id": building_id,
        "building_name": building_name,
        "floor": str(floor),
        "number": number,
        "name": name,
        "type": kind,
        "capacity": capacity,
    }


def demo_spaces() -> list[dict[str, Any]]:
    """The demo organisation's spaces: 330 of them in three buildings, always the same."""
    rows: list[dict[str, Any]] = []
    for building_id, building_name, prefix, floors, per_floor in DEMO_BUILDINGS:
        named = {number: (name, kind, capacity) for number, name, kind, capacity in NAMED_ROOMS[building_id]}
        for floor in range(1, floors + 1):
            for room in range(1, per_floor + 1):
                number = f"{prefix}-{floor:02d}-{room:03d}"
                if number in named:
                    name, kind, capacity = named[number]
                else:
                    kind, pattern, capacity = _KINDS[(floor + room) % len(_KINDS)]
                    name = pattern.format(floor=floor, room=f"{room:02d}")
                rows.append(_row(building_id, building_name, floor, number, name, kind, capacity))
    return rows


def generated_spaces(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """`count` spaces with unique numbers and ids spread over buildings and floors, the same for the
    same seed: for benchmarks (10,000 spaces) and paging tests."""
    rng = random.Random(seed)
    building_count = max(1, min(20, count // 500 or 1))
    buildings = [(f"bench-{b:02d}", f"Bench Building {b:02d}", f"B{b:02d}") for b in range(1, building_count + 1)]
    rows: list[dict[str, Any]] = []
    next_room: dict[tuple[str, int], int] = {}
    while len(rows) < count:
        building_id, building_name, prefix = buildings[rng.randrange(len(buildings))]
        floor = rng.randint(1, 30)
        room = next_room.get((building_id, floor), 0) + 1
        next_room[(building_id, floor)] = room
        kind, pattern, capacity = _KINDS[rng.randrange(len(_KINDS))]
        number = f"{prefix}-{floor:02d}-{room:03d}"
        name = pattern.format(floor=floor, room=f"{room:02d}")
        rows.append(_row(building_id, building_name, floor, number, name, kind, capacity))
    return rows
