"""A space as an import gives it: the columns, their rules, and one validated row.

Owns what a space id, building id, floor, number, name, type and capacity may be (Table
Storage's key rules included) and the columns of a spaces file. It never reads a file or a
table: `shared.imports` reads CSV files, `importer` writes rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.errors import Invalid

MAX_KEY_LENGTH = 64
MAX_NAME_LENGTH = 200
MAX_TYPE_LENGTH = 64
MAX_CAPACITY = 100_000
MAX_IMPORT_ROWS = 20_000
MAX_CSV_BYTES = 5 * 1024 * 1024
DEFAULT_TYPE = "meeting room"
CSV_COLUMNS = ("id", "building_id", "building_name", "floor", "number", "name", "type", "capacity")
REQUIRED_COLUMNS = ("id", "building_id", "floor", "number", "name")

# Characters Table Storage forbids in PartitionKey and RowKey, beyond control characters.
# https://learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model#characters-disallowed-in-key-fields
_FORBIDDEN_KEY_CHARACTERS = "/\\#?"


def validate_key(value: Any, what: str) -> str:
    """A space id, building id, floor or space number as Table Storage keys allow them: 1-64 printable
    characters without `/ \\ # ?`, surrounding whitespace removed; `Invalid` naming the problem."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{what} is missing")
    text = value.strip()
    if len(text) > MAX_KEY_LENGTH:
        raise Invalid(f"{what} is {len(text)} characters long; at most {MAX_KEY_LENGTH} are allowed")
    if not text.isprintable():
        raise Invalid(f"{what} {text!r} contains a control or non-printable character")
    bad = sorted({ch for ch in text if ch in _FORBIDDEN_KEY_CHARACTERS})
    if bad:
        raise Invalid(f"{what} {text!r} contains {' '.join(bad)}, which {what}s cannot hold")
    return text


def _validate_text(value: Any, what: str, limit: int, *, default: str | None = None) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        if default is not None:
            return default
        raise Invalid(f"{what} is missing")
    if not isinstance(value, str):
        raise Invalid(f"{what} must be text")
    text = " ".join(value.split())
    if len(text) > limit:
        raise Invalid(f"{what} is {len(text)} characters long; at most {limit} are allowed")
    if not text.isprintable():
        raise Invalid(f"{what} contains a control or non-printable character")
    return text


def _validate_capacity(value: Any) -> int:
    # Always stored: an import merges rows, and a merge cannot remove a property once written.
    if value is None or (isinstance(value, str) and not value.strip()):
        return 0
    if isinstance(value, bool):
        raise Invalid("capacity must be a whole number")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise Invalid(f"capacity {value.strip()!r} is not a whole number") from None
    if not isinstance(value, int):
        raise Invalid("capacity must be a whole number")
    if not 0 <= value <= MAX_CAPACITY:
        raise Invalid(f"capacity must be between 0 and {MAX_CAPACITY}")
    return value


@dataclass(frozen=True)
class SpaceRow:
    """One validated row of an import: the attributes a space has, without its link."""

    space_id: str
    building_id: str
    building_name: str
    floor: str
    number: str
    name: str
    type: str
    capacity: int

    def attributes(self) -> dict[str, Any]:
        return {
            "building_id": self.building_id,
            "building_name": self.building_name,
            "floor": self.floor,
            "number": self.number,
            "number_lower": self.number.casefold(),
            "name": self.name,
            "name_lower": self.name.casefold(),
            "type": self.type,
            "capacity": self.capacity,
        }


def parse_space_row(row: Any) -> SpaceRow:
    """Validate one row (a dict with the CSV columns); `Invalid` says what is wrong with it."""
    if not isinstance(row, dict):
        raise Invalid("each space must be an object with id, building_id, floor, number and name")
    building_id = validate_key(row.get("building_id"), "building_id")
    return SpaceRow(
        space_id=validate_key(row.get("id"), "id"),
        building_id=building_id,
        building_name=_validate_text(row.get("building_name"), "building_name", MAX_NAME_LENGTH, default=building_id),
        floor=validate_key(row.get("floor"), "floor"),
        number=validate_key(row.get("number"), "number"),
        name=_validate_text(row.get("name"), "name", MAX_NAME_LENGTH),
        type=_validate_text(row.get("type"), "type", MAX_TYPE_LENGTH, default=DEFAULT_TYPE),
        capacity=_validate_capacity(row.get("capacity")),
    )
