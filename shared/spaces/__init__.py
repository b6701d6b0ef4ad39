"""The spaces directory: buildings, floors and spaces of the workplace system, and which calendar each is linked to.

Owns the Spaces and SpaceIndex tables, the rules of a space row, the link's space side,
search and browse, and the suggestion of a space for a room mailbox.
"""

from __future__ import annotations

from shared.spaces.directory import SpaceDirectory
from shared.spaces.matching import RoomHint, best_match, candidates_for, score
from shared.spaces.model import INDEX_PARTITION, IndexEntry, Space, SpaceTaken, space_not_found
from shared.spaces.rows import CSV_COLUMNS, REQUIRED_COLUMNS, SpaceRow, parse_space_row, validate_key
from shared.spaces.snapshot import Snapshot

__all__ = [
    "CSV_COLUMNS", "INDEX_PARTITION", "REQUIRED_COLUMNS", "IndexEntry", "RoomHint", "Snapshot", "Space",
    "SpaceDirectory", "SpaceRow", "SpaceTaken", "best_match", "candidates_for", "parse_space_row", "score",
    "space_not_found", "validate_key",
]
