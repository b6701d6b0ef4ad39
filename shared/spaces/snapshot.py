"""This process's snapshot of the SpaceIndex partition, for search, browse and suggestions.

Table Storage has no secondary indexes and no "contains" operator, so a number-prefix or
name-contains search would be a full scan per request. Instead each process keeps the
partition's small rows (id, building, floor, number, name, type, capacity, link), sorted by
number, with look-up maps. Older than `cache_seconds` it is reloaded in the background while
the old one keeps serving; an import in this process drops it, so the next search loads what
was just written; this process's own claims and releases update its links at once. A space
imported or linked by another process shows once the snapshot reloads.
https://learn.microsoft.com/rest/api/storageservices/querying-tables-and-entities

Owns the snapshot and its reloads. It never decides a link: claims read the row itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from shared.spaces.matching import FILLER_WORDS, compact, words_of
from shared.spaces.model import IndexEntry, Space
from shared.storage import Parallel

log = logging.getLogger("rcc.spaces")


class Snapshot:
    """The SpaceIndex partition as of one moment, sorted by number, with lookup maps."""

    def __init__(self, entries: Iterable[IndexEntry], loaded_at: float,
                 links: dict[str, tuple[str, str, str]] | None = None) -> None:
        self.entries = sorted(entries, key=lambda entry: entry.sort_key)
        # space id -> (account id, email, linked at): as loaded, then kept current by this process's
        # own claims and releases; other instances' links show once the snapshot reloads.
        self.links = dict(links or {})
        self.sort_keys = [entry.sort_key for entry in self.entries]
        self.loaded_at = loaded_at
        self.by_number = {entry.number.casefold(): entry for entry in self.entries}
        self.by_compact_number: dict[str, list[IndexEntry]] = {}
        self.by_compact_name: dict[str, list[IndexEntry]] = {}
        self.by_word: dict[str, list[IndexEntry]] = {}
        for entry in self.entries:
            self.by_compact_number.setdefault(compact(entry.number), []).append(entry)
            self.by_compact_name.setdefault(compact(entry.name), []).append(entry)
            for word in set(words_of(entry.name)) - FILLER_WORDS:
                if not word.isdigit():
                    self.by_word.setdefault(word, []).append(entry)


class SpaceSnapshots:
    """The snapshot of one SpaceIndex partition, loaded on first use and kept fresh.

    A generation, bumped by every import in this process, makes a load that an import
    overtook serve once and not be kept."""

    def __init__(self, load: Callable[[], Snapshot], parallel: Parallel, cache_seconds: float = 30.0) -> None:
        self._load = load
        self._parallel = parallel
        self.cache_seconds = cache_seconds
        self._current: Snapshot | None = None
        self._generation = 0
        self._reloading = False
        self._lock = threading.Lock()
        self._loading = threading.Lock()

    def current(self) -> Snapshot:
        """Older than `cache_seconds`, still served while a background reload runs (loading 10,000
        rows takes seconds; no request should wait for it); with none at all (first use, or just
        after an import here) it is loaded now."""
        current = self._current
        if current is not None:
            if time.monotonic() - current.loaded_at >= self.cache_seconds:
                self._reload_in_background()
            return current
        with self._loading:
            if self._current is not None:
                return self._current
            generation = self._generation
            loaded = self._load()
            with self._lock:
                if self._generation == generation:
                    self._current = loaded
            return loaded

    def forget(self) -> None:
        """Drop the snapshot, so the next search loads what was just written."""
        with self._lock:
            self._current = None
            self._generation += 1

    def note_link(self, space: Space) -> None:
        """Keep the snapshot in step with a link this process just wrote or cleared."""
        current = self._current
        if current is None:
            return
        if space.linked_account_id:
            current.links[space.space_id] = (space.linked_account_id, space.linked_email or "",
                                             space.linked_at or "")
        else:
            current.links.pop(space.space_id, None)

    def _reload_in_background(self) -> None:
        with self._lock:
            if self._reloading:
                return
            self._reloading = True
            generation = self._generation

        def reload() -> None:
            try:
                loaded = self._load()
                with self._lock:
                    if self._generation == generation:
                        self._current = loaded
            except Exception:  # noqa: BLE001 - the old snapshot stays in use; the next search tries again
                log.warning("reloading the spaces snapshot failed", exc_info=True)
            finally:
                with self._lock:
                    self._reloading = False

        self._parallel.submit(reload)


def snapshot_of(rows: Iterable[dict], loaded_at: float) -> Snapshot:
    """A snapshot of SpaceIndex rows (as `SpaceTables.index_rows` reads them)."""
    entries, links = [], {}
    for entity in rows:
        space = Space.from_index(entity)
        entries.append(IndexEntry.of(space))
        if space.linked_account_id:
            links[space.space_id] = (space.linked_account_id, space.linked_email or "", space.linked_at or "")
    return Snapshot(entries, loaded_at=loaded_at, links=links)
