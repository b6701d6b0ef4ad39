"""The Spaces and SpaceIndex tables and every query over them.

`Spaces`: PartitionKey = building id, RowKey = space id (what browsing a building reads).
`SpaceIndex`: one partition `"space"`, RowKey = space id: every space's attributes plus its
link. The SpaceIndex row is the lock behind "one space has at most one calendar": the link
is only ever written with the row's ETag. Owns the OData of both tables and the transactions
that write them. It never decides whether a claim may be made.
https://learn.microsoft.com/azure/storage/tables/table-storage-design-for-query
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from shared.errors import Invalid
from shared.spaces.model import INDEX_PARTITION, Space
from shared.spaces.rows import validate_key
from shared.storage import Parallel, Table, in_transactions

# The SpaceIndex columns a `Space` is made of (not the import's stamps).
SPACE_COLUMNS = ("building_id", "building_name", "floor", "number", "name", "type", "capacity",
                 "linked_account_id", "linked_email", "linked_at")


class SpaceTables:
    def __init__(self, spaces: Table, index: Table, parallel: Parallel) -> None:
        self.spaces = spaces
        self.index = index
        self.parallel = parallel

    # --- SpaceIndex ------------------------------------------------------------------------

    def index_entity(self, space_id: str) -> dict[str, Any] | None:
        try:
            key = validate_key(space_id, "space id")
        except Invalid:
            return None  # a key Table Storage cannot hold names no space
        return self.index.get(INDEX_PARTITION, key)

    def find(self, space_id: str) -> Space | None:
        entity = self.index_entity(space_id)
        return Space.from_index(entity) if entity else None

    def by_number(self, number: str) -> Space | None:
        """The space with this number (case-insensitive, exact): one filtered scan."""
        for entity in self.index.query_all("PartitionKey eq @pk and number_lower eq @number",
                                           parameters={"pk": INDEX_PARTITION, "number": number.casefold()}):
            return Space.from_index(entity)
        return None

    def index_rows(self, select: list[str] | None = None) -> Iterator[dict[str, Any]]:
        return self.index.query_all("PartitionKey eq @pk", parameters={"pk": INDEX_PARTITION}, select=select)

    def space_rows(self) -> Iterator[dict[str, Any]]:
        """Every space's row, with the columns a `Space` is made of."""
        return self.index_rows(select=["RowKey", *SPACE_COLUMNS])

    def save_link(self, entity: dict[str, Any]) -> dict[str, Any]:
        """Replace the row If-Match (its `_etag`); `ConcurrencyConflict` when it changed meanwhile."""
        return self.index.update(entity)

    def merge_links(self, links: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Merge link properties into rows read with their `_etag`, in one transaction, each If-Match:
        all apply, or `ConcurrencyConflict` and none does."""
        return self.index.transact([("update-merge", {"PartitionKey": INDEX_PARTITION, **link}) for link in links])

    def fresh(self, space_ids: list[str]) -> dict[str, Space]:
        """The current rows of these spaces (`Table.get_many`, the key queries in parallel): fewer
        round trips than one point read per space, which is what counts on a page of 50."""
        found = self.index.get_many(INDEX_PARTITION, space_ids, self.parallel.run)
        return {space_id: Space.from_index(entity) for space_id, entity in found.items()}

    # --- Spaces (by building) --------------------------------------------------------------

    def floors_of(self, building_id: str) -> dict[str, int]:
        """Floor label -> number of spaces, for one building."""
        counts: dict[str, int] = {}
        for entity in self.spaces.query_all("PartitionKey eq @pk", parameters={"pk": building_id}, select=["floor"]):
            counts[entity.get("floor") or ""] = counts.get(entity.get("floor") or "", 0) + 1
        return counts

    def space_ids_on(self, building_id: str, floor: str) -> list[str]:
        return [entity["RowKey"] for entity in self.spaces.query_all(
            "PartitionKey eq @pk and floor eq @floor", parameters={"pk": building_id, "floor": floor},
            select=["RowKey"])]

    # --- import ----------------------------------------------------------------------------

    def write_spaces(self, entities: list[dict[str, Any]]) -> None:
        """Replace Spaces rows, in transactions per building, side by side."""
        self.parallel.run([lambda batch=batch: self.spaces.transact(batch)
                           for batch in in_transactions(("upsert", entity) for entity in entities)])

    def delete_spaces(self, keys: list[tuple[str, str]]) -> None:
        self.parallel.run([lambda building_id=building_id, space_id=space_id: self.spaces.delete(building_id, space_id)
                           for building_id, space_id in keys])

    def merge_index(self, entities: list[dict[str, Any]]) -> None:
        """Merge attributes into SpaceIndex rows (creating them), in transactions, side by side. Merge,
        not replace: the link properties are left out of these entities and must survive.
        https://learn.microsoft.com/rest/api/storageservices/insert-or-merge-entity"""
        self.parallel.run([lambda batch=batch: self.index.transact(batch)
                           for batch in in_transactions(("upsert-merge", {"PartitionKey": INDEX_PARTITION, **entity})
                                                        for entity in entities)])
