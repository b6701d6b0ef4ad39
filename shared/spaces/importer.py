"""Importing spaces: validate each row, then write what changed, Spaces first and SpaceIndex last.

Owns deciding each row (valid, unique id and number within the file and the directory) and
the order of writes that makes an import restartable: Spaces rows are replaced first and
SpaceIndex rows merged last, in entity-group transactions per partition, and "unchanged" is
decided by comparing with SpaceIndex. A run that stops half-way leaves SpaceIndex saying "not
yet done" for what it did not finish, and running the same file again completes it; a second
run of a finished file writes nothing. SpaceIndex rows are merged without the link
properties, so an import racing a claim can never undo the link. It never unlinks a space.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.errors import Invalid, TooLarge
from shared.models import iso, utc_now
from shared.spaces.rows import MAX_IMPORT_ROWS, SpaceRow, parse_space_row
from shared.spaces.tables import SpaceTables


def import_spaces(tables: SpaceTables, rows: Iterable[dict[str, Any]], actor: str) -> tuple[dict[str, Any], bool]:
    """Upsert spaces; the report (counts and rejected rows by line) and whether anything changed.
    Never touches a link."""
    existing = {entity["RowKey"]: entity for entity in tables.index_rows()}
    owner_by_number = {
        (entity.get("number") or "").casefold(): space_id for space_id, entity in existing.items()
    }
    line_by_id: dict[str, int] = {}
    rejected: list[dict[str, Any]] = []
    accepted: list[SpaceRow] = []
    for position, raw in enumerate(rows, start=1):
        line = raw.get("_line") if isinstance(raw, dict) and isinstance(raw.get("_line"), int) else position
        if position > MAX_IMPORT_ROWS:
            raise TooLarge(f"an import holds at most {MAX_IMPORT_ROWS} spaces; split the file")
        try:
            if isinstance(raw, dict) and raw.get("_extra_cells"):
                raise Invalid("the row has more cells than the header has columns")
            row = parse_space_row(raw)
            if row.space_id in line_by_id:
                raise Invalid(f"space id {row.space_id} already appears on line {line_by_id[row.space_id]}")
            number_key = row.number.casefold()
            owner = owner_by_number.get(number_key)
            if owner is not None and owner != row.space_id:
                where = f"line {line_by_id[owner]}" if owner in line_by_id else "an existing space"
                raise Invalid(f"number {row.number} is already used by space {owner} ({where})")
        except Invalid as error:
            rejected.append({"line": line, "reason": error.message})
            continue
        previous = existing.get(row.space_id)
        if previous is not None:
            owner_by_number.pop((previous.get("number") or "").casefold(), None)
        owner_by_number[number_key] = row.space_id
        line_by_id[row.space_id] = line
        accepted.append(row)

    added = updated = unchanged = 0
    changed: list[SpaceRow] = []
    moved: list[tuple[str, str]] = []
    for row in accepted:
        previous = existing.get(row.space_id)
        if previous is None:
            added += 1
        elif _same_attributes(previous, row):
            unchanged += 1
            continue
        else:
            updated += 1
            if previous.get("building_id") and previous["building_id"] != row.building_id:
                moved.append((previous["building_id"], row.space_id))
        changed.append(row)

    stamp = {"imported_by": actor, "imported_at": iso(utc_now())}
    # Spaces first, SpaceIndex last: SpaceIndex is the record of what is done (see the docstring).
    tables.write_spaces([{"PartitionKey": row.building_id, **_space_from_row(row), **stamp} for row in changed])
    tables.delete_spaces(moved)
    tables.merge_index([{**_space_from_row(row), **stamp} for row in changed])
    return {"added": added, "updated": updated, "unchanged": unchanged, "rejected": rejected}, bool(changed)


def _space_from_row(row: SpaceRow) -> dict[str, Any]:
    return {"RowKey": row.space_id, **row.attributes()}


def _same_attributes(entity: dict[str, Any], row: SpaceRow) -> bool:
    return all(entity.get(name) == value for name, value in row.attributes().items())
