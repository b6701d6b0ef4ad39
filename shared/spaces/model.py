"""A space of the directory, with the calendar it is linked to, as the SpaceIndex row holds it.

Owns the `Space` and the lighter `IndexEntry` the in-process snapshot keeps, and the errors a
look-up or a claim raises. It never reads or writes storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared.errors import Conflict, NotFound
from shared.identifiers import normalise_email
from shared.spaces.rows import DEFAULT_TYPE

INDEX_PARTITION = "space"


@dataclass
class Space:
    space_id: str
    building_id: str
    building_name: str
    floor: str
    number: str
    name: str
    type: str
    capacity: int
    linked_account_id: str | None = None
    linked_email: str | None = None
    linked_at: str | None = None
    etag: str | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return f"{self.number} ({self.name})"

    def is_linked_to(self, account_id: str, email: str) -> bool:
        return (self.linked_account_id, self.linked_email) == (account_id, normalise_email(email))

    @classmethod
    def from_index(cls, entity: dict[str, Any]) -> Space:
        return cls(
            space_id=entity["RowKey"],
            building_id=entity.get("building_id") or "",
            building_name=entity.get("building_name") or entity.get("building_id") or "",
            floor=entity.get("floor") or "",
            number=entity.get("number") or "",
            name=entity.get("name") or "",
            type=entity.get("type") or DEFAULT_TYPE,
            capacity=int(entity.get("capacity") or 0),
            linked_account_id=entity.get("linked_account_id") or None,
            linked_email=entity.get("linked_email") or None,
            linked_at=entity.get("linked_at") or None,
            etag=entity.get("_etag"),
        )

    def to_api(self) -> dict[str, Any]:
        linked = (
            {"account_id": self.linked_account_id, "email": self.linked_email} if self.linked_account_id else None
        )
        return {
            "id": self.space_id,
            "building_id": self.building_id,
            "building_name": self.building_name,
            "floor": self.floor,
            "number": self.number,
            "name": self.name,
            "type": self.type,
            "capacity": self.capacity,
            "linked": linked,
        }


# The SpaceIndex columns a `Space` is made of (what `resolve_many` reads; not the import stamps).
_SPACE_COLUMNS = ("building_id", "building_name", "floor", "number", "name", "type", "capacity",
                  "linked_account_id", "linked_email", "linked_at")


def space_not_found(reference: str) -> NotFound:
    """What `resolve` raises for a number or id that names no space."""
    return NotFound(f"there is no space with the number or id {reference!r}")


class SpaceTaken(Conflict):
    """The space is linked to another calendar; the holder is named in the message and on the error."""

    def __init__(self, space: Space) -> None:
        super().__init__(f"space {space.label} is linked to {space.linked_email}")
        self.space = space
        self.holder_account_id = space.linked_account_id or ""
        self.holder_email = space.linked_email or ""


@dataclass(frozen=True)
class IndexEntry:
    """What the snapshot knows of one space: enough to search, show and suggest it."""

    space_id: str
    building_id: str
    building_name: str
    floor: str
    number: str
    name: str
    type: str = DEFAULT_TYPE
    capacity: int = 0

    @property
    def sort_key(self) -> tuple[str, str]:
        return (self.number.casefold(), self.space_id)

    @classmethod
    def of(cls, space: Space) -> IndexEntry:
        return cls(space_id=space.space_id, building_id=space.building_id, building_name=space.building_name,
                   floor=space.floor, number=space.number, name=space.name, type=space.type, capacity=space.capacity)


def space_of(entry: IndexEntry, link: tuple[str, str, str] | None) -> Space:
    """A `Space` from the snapshot's entry and link (account id, email, linked at)."""
    account_id, email, linked_at = link or (None, None, None)
    return Space(space_id=entry.space_id, building_id=entry.building_id, building_name=entry.building_name,
                 floor=entry.floor, number=entry.number, name=entry.name, type=entry.type, capacity=entry.capacity,
                 linked_account_id=account_id, linked_email=email, linked_at=linked_at)
