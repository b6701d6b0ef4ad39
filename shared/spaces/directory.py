"""The spaces directory: one space and its link, claims and releases, search, browse and suggestions.

Owns the rules of the link on the space's side: `claim`, `claim_many` (a bulk import's
claims, 100 to an entity-group transaction) and `release` change the link only with the
SpaceIndex row's ETag (If-Match), and a lost race is re-read and decided again, never
overwritten. It never decides anything about calendars themselves (the calendars package
keeps the calendar's side of the link) and never unlinks a space on import.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from shared.errors import ConcurrencyConflict, Conflict, NotFound
from shared.identifiers import normalise_email
from shared.models import iso, utc_now
from shared.spaces import browse, importer
from shared.spaces.matching import RoomHint, best_match, candidates_for
from shared.spaces.model import Space, SpaceTaken, space_not_found
from shared.spaces.snapshot import Snapshot, SpaceSnapshots, snapshot_of
from shared.spaces.tables import SPACE_COLUMNS, SpaceTables
from shared.storage import MAX_BATCH_SIZE, Parallel, Table

CLAIM_ATTEMPTS = 10
# `resolve_many` resolves up to this many references one by one, more in one pass over SpaceIndex.
RESOLVE_ONE_BY_ONE = 20


class SpaceDirectory:
    """Buildings, floors and spaces over the Spaces and SpaceIndex tables."""

    def __init__(self, spaces: Table, index: Table, *, parallel: Parallel | None = None,
                 cache_seconds: float = 30.0) -> None:
        self.spaces = spaces
        self.index = index
        self.tables = SpaceTables(spaces, index, parallel or Parallel(name="spaces"))
        self.snapshots = SpaceSnapshots(self._load_snapshot, self.tables.parallel, cache_seconds)

    # --- reading one space ---

    def get(self, space_id: str) -> Space:
        space = self.tables.find(space_id)
        if space is None:
            raise NotFound(f"there is no space with the id {space_id!r}")
        return space

    def resolve(self, number_or_id: str) -> Space:
        """The space with this id or, failing that, this number (case-insensitive, exact)."""
        space = self.tables.find(number_or_id)
        if space is not None:
            return space
        text = number_or_id.strip() if isinstance(number_or_id, str) else ""
        if text:
            cached = self.snapshot().by_number.get(text.casefold())
            if cached is not None:
                space = self.tables.find(cached.space_id)
                if space is not None and space.number.casefold() == text.casefold():
                    return space
            # Not in (or changed since) this process's snapshot: ask the table.
            space = self.tables.by_number(text)
            if space is not None:
                return space
        raise space_not_found(number_or_id)

    def resolve_many(self, references: Iterable[str]) -> dict[str, Space]:
        """The spaces these references name, as `resolve` would find them (an id, or failing that a
        number, case-insensitive), keyed by the reference as given; a reference that names no space
        is left out. Each comes with its ETag, ready for `claim_many`.

        A few are resolved one by one. More are found in one pass over the SpaceIndex partition
        (1,000 rows a page, only the space columns): a bulk import naming thousands of spaces
        would otherwise make two or three requests per space, and a page of the partition costs
        about what one request does. The pass keeps only the rows named, so memory grows with the
        references, not with the directory."""
        wanted = {reference for reference in references if isinstance(reference, str) and reference.strip()}
        if len(wanted) <= RESOLVE_ONE_BY_ONE:
            found: dict[str, Space] = {}
            for reference in wanted:
                try:
                    found[reference] = self.resolve(reference)
                except NotFound:
                    continue
            return found
        ids = {reference.strip() for reference in wanted}
        numbers = {reference.strip().casefold() for reference in wanted}
        by_id: dict[str, Space] = {}
        by_number: dict[str, Space] = {}
        for entity in self.tables.space_rows():
            number = (entity.get("number") or "").casefold()
            if entity["RowKey"] in ids or number in numbers:
                space = Space.from_index(entity)
                if space.space_id in ids:
                    by_id[space.space_id] = space
                if number in numbers:
                    by_number[number] = space
        resolved: dict[str, Space] = {}
        for reference in wanted:
            space = by_id.get(reference.strip()) or by_number.get(reference.strip().casefold())
            if space is not None:
                resolved[reference] = space
        return resolved

    # --- the link ---

    def claim(self, space_id: str, account_id: str, email: str) -> Space:
        """Link the space to the calendar (account, email). Linked to that calendar already: nothing
        changes. Linked to another: `SpaceTaken` naming the holder. The write is ETag-guarded on the
        SpaceIndex row; losing a race means re-reading and deciding again."""
        email = normalise_email(email)
        for _ in range(CLAIM_ATTEMPTS):
            entity = self.tables.index_entity(space_id)
            if entity is None:
                raise NotFound(f"there is no space with the id {space_id!r}")
            space = Space.from_index(entity)
            if space.is_linked_to(account_id, email):
                return space
            if space.linked_account_id:
                raise SpaceTaken(space)
            linked_at = iso(utc_now())
            entity.update(linked_account_id=account_id, linked_email=email, linked_at=linked_at)
            try:
                saved = self.tables.save_link(entity)
            except ConcurrencyConflict:
                continue
            claimed = Space.from_index({**entity, "_etag": saved["_etag"]})
            self.snapshots.note_link(claimed)
            return claimed
        raise ConcurrencyConflict(f"space {space_id} kept changing while linking it; try again")

    def claim_many(self, claims: list[tuple[Space, str, str]]) -> list[Space | Conflict | NotFound]:
        """Link each space (as read by `resolve_many`, with its ETag) to its calendar (account id, email),
        deciding like `claim`; one outcome per claim, in order: the linked `Space`, or the error `claim`
        would raise (`SpaceTaken` naming the holder, `NotFound`, `ConcurrencyConflict`).

        The spaces must be distinct. Free spaces are claimed with If-Match merges of the link properties,
        100 to an entity-group transaction (every SpaceIndex row is in one partition), so a transaction
        applies all its claims or none: one space changed since it was read fails the transaction with
        HTTP 412 and its claims are then made one by one with `claim`, which re-reads and decides again.
        A claim is never written over a link.
        https://learn.microsoft.com/rest/api/storageservices/performing-entity-group-transactions"""
        if len({space.space_id for space, _, _ in claims}) != len(claims):
            raise ValueError("claim_many needs distinct spaces")
        outcomes: list[Space | Conflict | NotFound | None] = [None] * len(claims)
        to_write: list[int] = []
        for position, (space, account_id, email) in enumerate(claims):
            if space.is_linked_to(account_id, email):
                outcomes[position] = space
            elif space.linked_account_id:
                outcomes[position] = SpaceTaken(space)
            elif not space.etag:
                raise ValueError(f"space {space.space_id} was not read with its ETag")
            else:
                to_write.append(position)

        def write(positions: list[int]) -> None:
            linked_at = iso(utc_now())
            links = [{"RowKey": claims[position][0].space_id, "linked_account_id": claims[position][1],
                      "linked_email": normalise_email(claims[position][2]), "linked_at": linked_at,
                      "_etag": claims[position][0].etag} for position in positions]
            try:
                results = self.tables.merge_links(links)
            except ConcurrencyConflict:
                # One of them changed since it was read: nothing of this transaction applied.
                for position in positions:
                    space, account_id, email = claims[position]
                    try:
                        outcomes[position] = self.claim(space.space_id, account_id, email)
                    except (Conflict, NotFound) as refused:
                        outcomes[position] = refused
                return
            for position, link, result in zip(positions, links, results, strict=True):
                outcomes[position] = replace(claims[position][0], linked_account_id=link["linked_account_id"],
                                             linked_email=link["linked_email"], linked_at=link["linked_at"],
                                             etag=result.get("_etag"))
                self.snapshots.note_link(outcomes[position])

        self.tables.parallel.run([lambda chunk=to_write[start:start + MAX_BATCH_SIZE]: write(chunk)
                                  for start in range(0, len(to_write), MAX_BATCH_SIZE)])
        return [outcome for outcome in outcomes if outcome is not None]

    def release(self, space_id: str, account_id: str, email: str) -> None:
        """Unlink the space if (and only if) it is linked to that calendar. Idempotent; an unknown space
        is no error, so removing a calendar can always call this."""
        email = normalise_email(email)
        for _ in range(CLAIM_ATTEMPTS):
            entity = self.tables.index_entity(space_id)
            if entity is None or not Space.from_index(entity).is_linked_to(account_id, email):
                return
            entity.update(linked_account_id="", linked_email="", linked_at="")
            try:
                self.tables.save_link(entity)
            except ConcurrencyConflict:
                continue
            self.snapshots.note_link(Space.from_index(entity))
            return
        raise ConcurrencyConflict(f"space {space_id} kept changing while unlinking it; try again")

    # --- import, search, browse (one module each) ---

    def import_spaces(self, rows: Iterable[dict[str, Any]], actor: str) -> dict[str, Any]:
        """Upsert spaces; report counts and rejected rows by line. Never touches a link."""
        report, changed = importer.import_spaces(self.tables, rows, actor)
        if changed:
            self.forget_snapshot()
        return report

    def search(self, q: str | None, page_size: int, continuation_token: str | None) -> dict[str, Any]:
        return browse.search(self.snapshot(), q, page_size, continuation_token)

    def buildings(self) -> list[dict[str, Any]]:
        return browse.buildings(self.snapshot())

    def floors(self, building_id: str) -> list[dict[str, Any]]:
        return browse.floors(self.tables, building_id)

    def spaces_on_floor(self, building_id: str, floor: str) -> list[dict[str, Any]]:
        return browse.spaces_on_floor(self.tables, building_id, floor)

    # --- the snapshot ---

    def snapshot(self) -> Snapshot:
        return self.snapshots.current()

    def forget_snapshot(self) -> None:
        self.snapshots.forget()

    def _load_snapshot(self) -> Snapshot:
        started = time.monotonic()
        return snapshot_of(self.tables.index_rows(select=["RowKey", *SPACE_COLUMNS]), loaded_at=started)

    # --- suggestions for discovered room mailboxes ---

    def suggest(
        self, display_name: str, email: str, building: str | None = None, floor: str | None = None
    ) -> tuple[Space | None, float]:
        """The space a room mailbox most likely is, and how sure that is (0..1); (None, 0.0) when no
        space matches well enough. Reads the snapshot; the suggested space itself is read fresh."""
        hint = RoomHint(display_name=display_name or "", email=email or "", building=building,
                        floor=None if floor is None else str(floor))
        entry, confidence = best_match(hint, candidates_for(hint, self.snapshot()))
        if entry is None:
            return None, 0.0
        space = self.tables.find(entry.space_id)
        return (space, confidence) if space is not None else (None, 0.0)
