"""Finding a space to link: search by number or name, and browse building → floor → space.

Owns what the Link dialog reads. Search, buildings and floors' counts are served from the
process's snapshot (milliseconds for 10,000 spaces), with links as the snapshot knows them; a
floor's spaces are read fresh from SpaceIndex, so browsing always shows the current link. The
search's continuation token is the (number, id) of the last row returned, not an offset, so a
reload between two pages neither repeats nor skips a space. It never writes.
"""

from __future__ import annotations

import bisect
from typing import Any

from shared.errors import Invalid, NotFound
from shared.spaces.matching import natural_key
from shared.spaces.model import IndexEntry, space_of
from shared.spaces.rows import validate_key
from shared.spaces.snapshot import Snapshot
from shared.spaces.tables import SpaceTables
from shared.storage import decode_continuation, encode_continuation


def search(snapshot: Snapshot, q: str | None, page_size: int, continuation_token: str | None) -> dict[str, Any]:
    """Spaces whose number starts with `q` or whose name contains it, case-insensitive, by number."""
    query = (q or "").strip().casefold()
    page_size = max(1, min(page_size, 1000))
    position = 0
    if continuation_token:
        token = decode_continuation(continuation_token)
        if token.get("q") != query or not isinstance(token.get("number"), str) or not isinstance(
            token.get("id"), str
        ):
            raise Invalid("the continuation token belongs to another search; start again from the first page")
        position = bisect.bisect_right(snapshot.sort_keys, (token["number"], token["id"]))
    page: list[IndexEntry] = []
    more = False
    for entry in snapshot.entries[position:]:
        if not query or entry.number.casefold().startswith(query) or query in entry.name.casefold():
            if len(page) == page_size:
                more = True
                break
            page.append(entry)
    # Served from the snapshot, links included: reading each page's rows again costs several times
    # the bare query (Table Storage has no multi-key read). A link made elsewhere shows once the
    # snapshot reloads; linking itself is always decided on the fresh row (`claim`).
    items = [space_of(entry, snapshot.links.get(entry.space_id)).to_api() for entry in page]
    next_token = None
    if more and page:
        number, space_id = page[-1].sort_key
        next_token = encode_continuation({"q": query, "number": number, "id": space_id})
    return {"items": items, "continuation_token": next_token}


def buildings(snapshot: Snapshot) -> list[dict[str, Any]]:
    """Every building with its name and how many floors and spaces it has, by name."""
    names: dict[str, str] = {}
    floors_of: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    for entry in snapshot.entries:
        names.setdefault(entry.building_id, entry.building_name)
        floors_of.setdefault(entry.building_id, set()).add(entry.floor)
        counts[entry.building_id] = counts.get(entry.building_id, 0) + 1
    return sorted(
        (
            {"id": building_id, "name": name, "floor_count": len(floors_of[building_id]),
             "space_count": counts[building_id]}
            for building_id, name in names.items()
        ),
        key=lambda building: (building["name"].casefold(), building["id"]),
    )


def floors(tables: SpaceTables, building_id: str) -> list[dict[str, Any]]:
    """A building's floors in natural order ("2" before "10"), each with its number of spaces."""
    key = _building_key(building_id)
    counts = tables.floors_of(key)
    if not counts:
        raise NotFound(f"there is no building with the id {building_id!r}")
    return [{"building_id": key, "floor": floor, "space_count": counts[floor]}
            for floor in sorted(counts, key=natural_key)]


def spaces_on_floor(tables: SpaceTables, building_id: str, floor: str) -> list[dict[str, Any]]:
    """The spaces on one floor of a building, by number, each with its current link."""
    key = _building_key(building_id)
    try:
        floor_label = validate_key(floor, "floor")
    except Invalid:
        raise NotFound(f"building {building_id} has no floor {floor!r}") from None
    space_ids = tables.space_ids_on(key, floor_label)
    if not space_ids:
        floors(tables, key)  # NotFound for an unknown building, before saying the floor is unknown
        raise NotFound(f"building {building_id} has no floor {floor!r}")
    spaces = sorted(tables.fresh(space_ids).values(), key=lambda space: (natural_key(space.number), space.space_id))
    return [space.to_api() for space in spaces]


def _building_key(building_id: str) -> str:
    try:
        return validate_key(building_id, "building id")
    except Invalid:
        raise NotFound(f"there is no building with the id {building_id!r}") from None
