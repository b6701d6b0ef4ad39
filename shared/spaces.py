"""The spaces directory: buildings, floors and spaces, and which calendar each space is linked to.

Owns the `Spaces` table (PartitionKey = building id, RowKey = space id; what browsing a
building reads) and the `SpaceIndex` table (one partition `"space"`, RowKey = space id;
every space's attributes plus its link). The SpaceIndex row is the lock behind
"one space has at most one calendar": `claim`, `claim_many` (a bulk import's claims, 100
to an entity-group transaction) and `release` change the link only with the row's ETag
(If-Match), and a lost race is re-read and decided again, never overwritten. It never
decides anything about calendars themselves (the calendars module keeps the calendar's
side of the link) and it never unlinks a space on import.

Import is restartable: it upserts the Spaces rows first and the SpaceIndex rows last,
in entity-group transactions per partition, and decides "unchanged" by comparing with
SpaceIndex. A run that stops half-way therefore leaves SpaceIndex saying "not yet
done" for what it did not finish, and running the same file again completes it; a
second run of a finished file writes nothing. SpaceIndex rows are written with
*merge* semantics and without the link properties, so an import racing a `claim`
can never undo the link.

Search: Table Storage has no secondary indexes and no "contains" operator
(https://learn.microsoft.com/rest/api/storageservices/querying-tables-and-entities),
so a number-prefix or name-contains search would be a full scan of every row on
every request. Instead each process keeps a snapshot of the SpaceIndex partition
(id, building, floor, number, name: about 10,000 small rows) sorted by number.
Once older than `cache_seconds` (30 s) it is reloaded in the background while the
old one keeps serving, since loading 10,000 rows takes seconds; an import in this
process drops it, so the next search loads the new rows. A search scans the
snapshot in memory (milliseconds for 10,000 spaces) and reads the returned page's
rows fresh from SpaceIndex, so a page always shows the current link. The
continuation token is the (number, id) of the last row returned, not an offset, so
a reload between two pages neither repeats nor skips a space. The price: a space
imported by *another* process may take 30 s and a reload to show in search,
buildings and suggestions; `get`, `resolve`, `claim`, `release`, a building's
floors and a floor's spaces read the tables directly.
"""

from __future__ import annotations

import bisect
import csv
import difflib
import io
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import TableTransactionError, UpdateMode

from shared.errors import ConcurrencyConflict, Conflict, Invalid, NotFound, TooLarge
from shared.models import iso, utc_now
from shared.storage import Table
from shared.storage.batch import submit_transaction
from shared.storage.tables import MAX_BATCH_SIZE, decode_continuation, encode_continuation

log = logging.getLogger("rcc.spaces")

INDEX_PARTITION = "space"
MAX_KEY_LENGTH = 64
MAX_NAME_LENGTH = 200
MAX_TYPE_LENGTH = 64
MAX_CAPACITY = 100_000
MAX_IMPORT_ROWS = 20_000
MAX_CSV_BYTES = 5 * 1024 * 1024
DEFAULT_TYPE = "meeting room"
CSV_COLUMNS = ("id", "building_id", "building_name", "floor", "number", "name", "type", "capacity")
REQUIRED_COLUMNS = ("id", "building_id", "floor", "number", "name")
# A $filter may hold at most 15 discrete comparisons; one is the PartitionKey.
# https://learn.microsoft.com/rest/api/storageservices/querying-tables-and-entities#supported-comparison-operators
ROWS_PER_FILTER = 14
# Requests in flight at once for a page's reads and an import's batches; within the
# HTTP connection pool of one storage client (10 connections per host by default).
PARALLEL_REQUESTS = 8
CLAIM_ATTEMPTS = 10
# `resolve_many` resolves up to this many references one by one, more in one pass over SpaceIndex.
RESOLVE_ONE_BY_ONE = 20
SUGGESTION_THRESHOLD = 0.4

# Characters Table Storage forbids in PartitionKey and RowKey, beyond control characters.
# https://learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model#characters-disallowed-in-key-fields
_FORBIDDEN_KEY_CHARACTERS = "/\\#?"
_WORDS = re.compile(r"[^\W_]+")
# Words that say "this is a room" rather than which room; they must not make two rooms look alike.
_FILLER_WORDS = frozenset(
    {"room", "rooms", "meeting", "conference", "boardroom", "the", "and", "of", "at", "mtg", "rm"}
)


# --- validation --------------------------------------------------------------------------------------------------


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


def rows_from_csv(data: bytes | str) -> list[dict[str, Any]]:
    """The rows of a spaces CSV as dicts carrying their physical line number under `_line`.

    UTF-8 with or without BOM, `,` or `;`, header names case-insensitive, blank lines skipped.
    A missing required column is an `Invalid` for the whole file; bad values are left to the import,
    which reports them per line."""
    if len(data) > MAX_CSV_BYTES:
        raise TooLarge(f"the CSV is larger than {MAX_CSV_BYTES // (1024 * 1024)} MiB; split it into smaller files")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise Invalid("the CSV is not UTF-8 text") from None
    else:
        text = data.removeprefix("\ufeff")
    first_line = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    rows: list[dict[str, Any]] = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        if header is None:
            header = [cell.strip().lower() for cell in cells]
            missing = [column for column in REQUIRED_COLUMNS if column not in header]
            if missing:
                raise Invalid(
                    f"the CSV header lacks {', '.join(missing)}; expected the columns {','.join(CSV_COLUMNS)}"
                )
            continue
        row: dict[str, Any] = {name: value for name, value in zip(header, cells, strict=False) if name}
        if len(cells) > len(header):
            row["_extra_cells"] = True
        row["_line"] = reader.line_num
        rows.append(row)
        if len(rows) > MAX_IMPORT_ROWS:
            raise TooLarge(f"an import holds at most {MAX_IMPORT_ROWS} spaces; split the file")
    if header is None:
        raise Invalid(f"the CSV is empty; expected a header with {','.join(CSV_COLUMNS)}")
    return rows


# --- the model ---------------------------------------------------------------------------------------------------


def _normalise_email(email: str) -> str:
    return email.strip().lower()


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
        return (self.linked_account_id, self.linked_email) == (account_id, _normalise_email(email))

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


# --- the in-process snapshot for search and suggestions ----------------------------------------------------------


def _words(text: str) -> list[str]:
    return _WORDS.findall(text.casefold())


def _compact(text: str) -> str:
    return "".join(_words(text))


def _floor_key(floor: str) -> str:
    """Floors compare as labels with leading zeros dropped: "03" is floor "3"."""
    label = floor.strip().casefold()
    return (label.lstrip("0") or "0") if label.isdigit() else label


def _natural_key(text: str) -> tuple[Any, ...]:
    """Sort key putting "2" before "10" and "B1" after numbers."""
    parts = re.findall(r"\d+|\D+", text.casefold())
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in parts)


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
            self.by_compact_number.setdefault(_compact(entry.number), []).append(entry)
            self.by_compact_name.setdefault(_compact(entry.name), []).append(entry)
            for word in set(_words(entry.name)) - _FILLER_WORDS:
                if not word.isdigit():
                    self.by_word.setdefault(word, []).append(entry)


# Per storage table (so tests with tables of their own don't share): the snapshot, a generation
# bumped by every import in this process, and whether a background reload is running.
_snapshots: dict[str, Snapshot] = {}
_generations: dict[str, int] = {}
_reloading: set[str] = set()
_snapshots_lock = threading.Lock()
_loading_lock = threading.Lock()


# --- suggestion scoring (pure) -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoomHint:
    """What Graph tells about a room mailbox, normalised for matching."""

    display_name: str
    email: str
    building: str | None = None
    floor: str | None = None

    @property
    def local_part(self) -> str:
        return self.email.split("@", 1)[0]

    def words(self) -> list[str]:
        return _words(self.display_name)

    def email_words(self) -> list[str]:
        return _words(self.local_part)


def _spans(words: list[str]) -> Iterator[str]:
    """Every contiguous run of words, joined: how a number like SG-03-014 shows up inside a name."""
    for start in range(len(words)):
        for end in range(start + 1, len(words) + 1):
            yield "".join(words[start:end])


def name_score(hint: RoomHint, entry: IndexEntry) -> float:
    """How well the room mailbox's display name and email match the space's number or name, 0..1."""
    display_words = hint.words()
    email_words = hint.email_words()
    number = _compact(entry.number)
    # The space number written in the display name or the address is the strongest evidence.
    if number and (number in set(_spans(display_words)) or number in set(_spans(email_words))):
        return 0.95 if len(number) >= 3 else 0.7
    name = _compact(entry.name)
    if not name:
        return 0.0
    display_content = [w for w in display_words if w not in _FILLER_WORDS]
    if name == _compact(hint.display_name) or name == "".join(display_content):
        return 0.9
    if name == _compact(hint.local_part) or name == "".join(w for w in email_words if w not in _FILLER_WORDS):
        return 0.85
    name_words = set(_words(entry.name)) - _FILLER_WORDS
    if name_words and name_words <= set(display_content):
        # All of the space's name is in the display name, with more words beside it ("SG HQ Orchard 10p").
        return 0.6 + 0.2 * len(name_words) / max(len(set(display_content)), 1)
    if name_words and name_words <= set(email_words):
        return 0.6
    ratio = difflib.SequenceMatcher(None, name, "".join(display_content) or _compact(hint.display_name)).ratio()
    return 0.6 * ratio if ratio >= 0.75 else 0.0


def location_adjustment(hint: RoomHint, entry: IndexEntry) -> float:
    """A boost when the mailbox's building and floor agree with the space's, a penalty when they differ."""
    adjustment = 0.0
    if hint.building and hint.building.strip():
        building = _compact(hint.building)
        candidates = {_compact(entry.building_name), _compact(entry.building_id)}
        building_words = set(_words(hint.building))
        if building in candidates or any(
            building_words and building_words <= set(_words(text)) for text in (entry.building_name, entry.building_id)
        ):
            adjustment += 0.1
        else:
            adjustment -= 0.2
    if hint.floor is not None and str(hint.floor).strip():
        adjustment += 0.05 if _floor_key(str(hint.floor)) == _floor_key(entry.floor) else -0.1
    return adjustment


def score(hint: RoomHint, entry: IndexEntry) -> float:
    """Confidence that the room mailbox is this space, 0..1; 0 when the names do not match at all."""
    base = name_score(hint, entry)
    if base <= 0:
        return 0.0
    return max(0.0, min(1.0, base + location_adjustment(hint, entry)))


def candidates_for(hint: RoomHint, snapshot: Snapshot) -> set[IndexEntry]:
    """The few spaces worth scoring: sharing a name word, or whose number or name appears in the hint."""
    found: set[IndexEntry] = set()
    words = hint.words() + hint.email_words()
    # Bare digits ("3", "05") are in hundreds of names; numbers are matched whole, below.
    for word in set(words) - _FILLER_WORDS:
        if not word.isdigit():
            found.update(snapshot.by_word.get(word, ()))
    for span in set(_spans(hint.words())) | set(_spans(hint.email_words())):
        found.update(snapshot.by_compact_number.get(span, ()))
        found.update(snapshot.by_compact_name.get(span, ()))
    return found


def best_match(hint: RoomHint, candidates: Iterable[IndexEntry]) -> tuple[IndexEntry | None, float]:
    """The best-scoring space and how sure the match is. Two spaces scoring alike make it less sure,
    since the admin must choose; below `SUGGESTION_THRESHOLD` nothing is suggested."""
    scored = sorted(((score(hint, entry), entry.sort_key, entry) for entry in candidates), key=lambda item: (
        -item[0], item[1]))
    if not scored or scored[0][0] < SUGGESTION_THRESHOLD:
        return None, 0.0
    best_score, _, best = scored[0]
    if len(scored) > 1 and best_score - scored[1][0] < 0.05:
        best_score *= 0.6
    if best_score < SUGGESTION_THRESHOLD:
        return None, 0.0
    return best, round(best_score, 2)


# --- the directory -----------------------------------------------------------------------------------------------


def _space_from_row(row: SpaceRow) -> dict[str, Any]:
    return {"RowKey": row.space_id, **row.attributes()}


class SpaceDirectory:
    """Buildings, floors and spaces over the Spaces and SpaceIndex tables."""

    def __init__(self, spaces: Table, index: Table, *, cache_seconds: float = 30.0) -> None:
        self.spaces = spaces
        self.index = index
        self.cache_seconds = cache_seconds
        self._cache_key = f"{index.client.url}|{index.name}"

    # --- reading one space ---

    def get(self, space_id: str) -> Space:
        space = self._find(space_id)
        if space is None:
            raise NotFound(f"there is no space with the id {space_id!r}")
        return space

    def _find(self, space_id: str) -> Space | None:
        entity = self._index_entity(space_id)
        return Space.from_index(entity) if entity else None

    def _index_entity(self, space_id: str) -> dict[str, Any] | None:
        try:
            key = validate_key(space_id, "space id")
        except Invalid:
            return None  # a key Table Storage cannot hold names no space
        return self.index.get(INDEX_PARTITION, key)

    def resolve(self, number_or_id: str) -> Space:
        """The space with this id or, failing that, this number (case-insensitive, exact)."""
        space = self._find(number_or_id)
        if space is not None:
            return space
        text = number_or_id.strip() if isinstance(number_or_id, str) else ""
        if text:
            cached = self.snapshot().by_number.get(text.casefold())
            if cached is not None:
                space = self._find(cached.space_id)
                if space is not None and space.number.casefold() == text.casefold():
                    return space
            # Not in (or changed since) this process's snapshot: ask the table, one filtered scan.
            for entity in self.index.query_all(
                "PartitionKey eq @pk and number_lower eq @number",
                parameters={"pk": INDEX_PARTITION, "number": text.casefold()},
            ):
                return Space.from_index(entity)
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
        for entity in self._index_rows(select=["RowKey", *_SPACE_COLUMNS]):
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
        email = _normalise_email(email)
        for _ in range(CLAIM_ATTEMPTS):
            entity = self._index_entity(space_id)
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
                saved = self.index.update(entity)
            except ConcurrencyConflict:
                continue
            claimed = Space.from_index({**entity, "_etag": saved["_etag"]})
            self._note_link(claimed)
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
            operations = []
            for position in positions:
                space, account_id, email = claims[position]
                link = {"linked_account_id": account_id, "linked_email": _normalise_email(email),
                        "linked_at": linked_at}
                operations.append(("update", {"PartitionKey": INDEX_PARTITION, "RowKey": space.space_id, **link},
                                   {"mode": UpdateMode.MERGE, "etag": space.etag,
                                    "match_condition": MatchConditions.IfNotModified}))
            try:
                results = submit_transaction(self.index.client, operations)
            except TableTransactionError as error:
                if error.status_code not in (404, 412):
                    raise
                # One of them changed since it was read: nothing of this transaction applied.
                for position in positions:
                    space, account_id, email = claims[position]
                    try:
                        outcomes[position] = self.claim(space.space_id, account_id, email)
                    except (Conflict, NotFound) as refused:
                        outcomes[position] = refused
                return
            for position, (_, entity, _), result in zip(positions, operations, results, strict=True):
                space = claims[position][0]
                outcomes[position] = replace(space, linked_account_id=entity["linked_account_id"],
                                             linked_email=entity["linked_email"], linked_at=entity["linked_at"],
                                             etag=(result or {}).get("etag"))
                self._note_link(outcomes[position])

        _in_parallel([lambda chunk=to_write[start:start + MAX_BATCH_SIZE]: write(chunk)
                      for start in range(0, len(to_write), MAX_BATCH_SIZE)])
        return [outcome for outcome in outcomes if outcome is not None]

    def release(self, space_id: str, account_id: str, email: str) -> None:
        """Unlink the space if (and only if) it is linked to that calendar. Idempotent; an unknown space
        is no error, so removing a calendar can always call this."""
        email = _normalise_email(email)
        for _ in range(CLAIM_ATTEMPTS):
            entity = self._index_entity(space_id)
            if entity is None or not Space.from_index(entity).is_linked_to(account_id, email):
                return
            entity.update(linked_account_id="", linked_email="", linked_at="")
            try:
                self.index.update(entity)
            except ConcurrencyConflict:
                continue
            self._note_link(Space.from_index(entity))
            return
        raise ConcurrencyConflict(f"space {space_id} kept changing while unlinking it; try again")

    # --- import ---

    def import_spaces(self, rows: Iterable[dict[str, Any]], actor: str) -> dict[str, Any]:
        """Upsert spaces; report counts and rejected rows by line. Never touches a link."""
        existing = {entity["RowKey"]: entity for entity in self._index_rows()}
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
        # Batches are independent (distinct rows), so they go in parallel; each step ends before the next.
        _in_parallel(
            _batches(self.spaces, [{"PartitionKey": row.building_id, **_space_from_row(row), **stamp}
                                   for row in changed], UpdateMode.REPLACE)
        )
        _in_parallel([
            lambda building_id=building_id, space_id=space_id: self.spaces.delete(building_id, space_id)
            for building_id, space_id in moved
        ])
        # Merge, not replace: the link properties are left out of these entities and must survive.
        # https://learn.microsoft.com/rest/api/storageservices/insert-or-merge-entity
        _in_parallel(
            _batches(self.index, [{"PartitionKey": INDEX_PARTITION, **_space_from_row(row), **stamp}
                                  for row in changed], UpdateMode.MERGE)
        )
        if changed:
            self.forget_snapshot()
        return {"added": added, "updated": updated, "unchanged": unchanged, "rejected": rejected}

    def _index_rows(self, select: list[str] | None = None) -> Iterator[dict[str, Any]]:
        return self.index.query_all("PartitionKey eq @pk", parameters={"pk": INDEX_PARTITION}, select=select)

    # --- the snapshot ---

    def snapshot(self) -> Snapshot:
        """This process's snapshot of SpaceIndex. Older than `cache_seconds`, it is still served while a
        background reload runs (loading 10,000 rows takes seconds; no request should wait for it);
        with none at all (first use, or just after an import here) it is loaded now."""
        key = self._cache_key
        current = _snapshots.get(key)
        if current is not None:
            if time.monotonic() - current.loaded_at >= self.cache_seconds:
                self._reload_in_background()
            return current
        with _loading_lock:
            current = _snapshots.get(key)
            if current is not None:
                return current
            generation = _generations.get(key, 0)
            loaded = self._load_snapshot()
            with _snapshots_lock:
                # An import that finished while this loaded has made it stale: use it once, don't keep it.
                if _generations.get(key, 0) == generation:
                    _snapshots[key] = loaded
            return loaded

    def forget_snapshot(self) -> None:
        """Drop this process's snapshot, so the next search loads what was just written."""
        with _snapshots_lock:
            _snapshots.pop(self._cache_key, None)
            _generations[self._cache_key] = _generations.get(self._cache_key, 0) + 1

    def _reload_in_background(self) -> None:
        key = self._cache_key
        with _snapshots_lock:
            if key in _reloading:
                return
            _reloading.add(key)
            generation = _generations.get(key, 0)

        def reload() -> None:
            try:
                loaded = self._load_snapshot()
                with _snapshots_lock:
                    if _generations.get(key, 0) == generation:
                        _snapshots[key] = loaded
            except Exception:  # noqa: BLE001 - the old snapshot stays in use; the next search tries again
                log.warning("reloading the spaces snapshot failed", exc_info=True)
            finally:
                with _snapshots_lock:
                    _reloading.discard(key)

        _executor().submit(reload)

    def _load_snapshot(self) -> Snapshot:
        started = time.monotonic()
        entries, links = [], {}
        for entity in self._index_rows(select=["RowKey", "building_id", "building_name", "floor", "number", "name",
                                               "type", "capacity", "linked_account_id", "linked_email",
                                               "linked_at"]):
            entries.append(IndexEntry(
                space_id=entity["RowKey"],
                building_id=entity.get("building_id") or "",
                building_name=entity.get("building_name") or entity.get("building_id") or "",
                floor=entity.get("floor") or "",
                number=entity.get("number") or "",
                name=entity.get("name") or "",
                type=entity.get("type") or DEFAULT_TYPE,
                capacity=int(entity.get("capacity") or 0),
            ))
            if entity.get("linked_account_id"):
                links[entity["RowKey"]] = (entity["linked_account_id"], entity.get("linked_email") or "",
                                           entity.get("linked_at") or "")
        return Snapshot(entries, loaded_at=started, links=links)

    def _note_link(self, space: Space) -> None:
        """Keep this process's snapshot in step with a link it just wrote or cleared."""
        current = _snapshots.get(self._cache_key)
        if current is None:
            return
        if space.linked_account_id:
            current.links[space.space_id] = (space.linked_account_id, space.linked_email or "",
                                             space.linked_at or "")
        else:
            current.links.pop(space.space_id, None)

    def _fresh(self, space_ids: list[str]) -> dict[str, Space]:
        """The current SpaceIndex rows of these spaces: up to 14 keys per query, the queries in parallel.

        Fewer round trips than one point read per space, which is what counts on a page of 50 (a
        request costs more than the server scanning a 10,000-row partition); the design guide notes
        such an `or` filter scans the partition rather than seeking, which is cheap at this size.
        https://learn.microsoft.com/azure/storage/tables/table-storage-design-for-query"""
        calls = []
        for start in range(0, len(space_ids), ROWS_PER_FILTER):
            chunk = space_ids[start : start + ROWS_PER_FILTER]
            parameters = {"pk": INDEX_PARTITION, **{f"k{i}": key for i, key in enumerate(chunk)}}
            keys = " or ".join(f"RowKey eq @k{i}" for i in range(len(chunk)))
            # Spaces around the parentheses: the SDK finds @parameters by splitting the filter on spaces.
            query = f"PartitionKey eq @pk and ( {keys} )"
            calls.append(lambda query=query, parameters=parameters: list(
                self.index.query_all(query, parameters=parameters)))
        return {entity["RowKey"]: Space.from_index(entity) for found in _in_parallel(calls) for entity in found}

    # --- search and browse ---

    def search(self, q: str | None, page_size: int, continuation_token: str | None) -> dict[str, Any]:
        """Spaces whose number starts with `q` or whose name contains it, case-insensitive, by number."""
        query = (q or "").strip().casefold()
        page_size = max(1, min(page_size, 1000))
        position = 0
        snapshot = self.snapshot()
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
        # the bare query (Table Storage has no multi-key read). A link made elsewhere shows within
        # `cache_seconds`; linking itself is always decided on the fresh row (`claim`).
        items = [_space_of(entry, snapshot.links.get(entry.space_id)).to_api() for entry in page]
        next_token = None
        if more and page:
            number, space_id = page[-1].sort_key
            next_token = encode_continuation({"q": query, "number": number, "id": space_id})
        return {"items": items, "continuation_token": next_token}

    def buildings(self) -> list[dict[str, Any]]:
        """Every building with its name and how many floors and spaces it has, by name."""
        names: dict[str, str] = {}
        floors: dict[str, set[str]] = {}
        counts: dict[str, int] = {}
        for entry in self.snapshot().entries:
            names.setdefault(entry.building_id, entry.building_name)
            floors.setdefault(entry.building_id, set()).add(entry.floor)
            counts[entry.building_id] = counts.get(entry.building_id, 0) + 1
        return sorted(
            (
                {"id": building_id, "name": name, "floor_count": len(floors[building_id]),
                 "space_count": counts[building_id]}
                for building_id, name in names.items()
            ),
            key=lambda building: (building["name"].casefold(), building["id"]),
        )

    def floors(self, building_id: str) -> list[dict[str, Any]]:
        """A building's floors in natural order ("2" before "10"), each with its number of spaces."""
        key = self._building_key(building_id)
        counts: dict[str, int] = {}
        for entity in self.spaces.query_all("PartitionKey eq @pk", parameters={"pk": key}, select=["floor"]):
            counts[entity.get("floor") or ""] = counts.get(entity.get("floor") or "", 0) + 1
        if not counts:
            raise NotFound(f"there is no building with the id {building_id!r}")
        return [
            {"building_id": key, "floor": floor, "space_count": counts[floor]}
            for floor in sorted(counts, key=_natural_key)
        ]

    def spaces_on_floor(self, building_id: str, floor: str) -> list[dict[str, Any]]:
        """The spaces on one floor of a building, by number, each with its current link."""
        key = self._building_key(building_id)
        try:
            floor_label = validate_key(floor, "floor")
        except Invalid:
            raise NotFound(f"building {building_id} has no floor {floor!r}") from None
        space_ids = [
            entity["RowKey"]
            for entity in self.spaces.query_all(
                "PartitionKey eq @pk and floor eq @floor", parameters={"pk": key, "floor": floor_label},
                select=["RowKey"],
            )
        ]
        if not space_ids:
            self.floors(key)  # NotFound for an unknown building, before saying the floor is unknown
            raise NotFound(f"building {building_id} has no floor {floor!r}")
        spaces = sorted(self._fresh(space_ids).values(), key=lambda space: (_natural_key(space.number),
                                                                             space.space_id))
        return [space.to_api() for space in spaces]

    def _building_key(self, building_id: str) -> str:
        try:
            return validate_key(building_id, "building id")
        except Invalid:
            raise NotFound(f"there is no building with the id {building_id!r}") from None

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
        space = self._find(entry.space_id)
        return (space, confidence) if space is not None else (None, 0.0)


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """The process-wide pool, created on first use (nothing starts at import)."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=PARALLEL_REQUESTS, thread_name_prefix="spaces")
    return _pool


def _space_of(entry: IndexEntry, link: tuple[str, str, str] | None) -> Space:
    account_id, email, linked_at = link or (None, None, None)
    return Space(space_id=entry.space_id, building_id=entry.building_id, building_name=entry.building_name,
                 floor=entry.floor, number=entry.number, name=entry.name, type=entry.type, capacity=entry.capacity,
                 linked_account_id=account_id, linked_email=email, linked_at=linked_at)


def _in_parallel(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls on the pool and return their results in order; the first failure is raised once
    every call has finished."""
    if len(calls) <= 1:
        return [call() for call in calls]
    futures = [_executor().submit(call) for call in calls]
    errors = [future.exception() for future in futures]
    for error in errors:
        if error is not None:
            raise error
    return [future.result() for future in futures]


def _batches(table: Table, entities: list[dict[str, Any]], mode: UpdateMode) -> list[Callable[[], Any]]:
    """Upserts as entity-group transactions: at most 100 entities, all of one partition.
    (Table.submit_in_batches only replaces; the SpaceIndex needs merge.)
    https://learn.microsoft.com/rest/api/storageservices/performing-entity-group-transactions"""
    by_partition: dict[str, list[dict[str, Any]]] = {}
    for entity in entities:
        by_partition.setdefault(entity["PartitionKey"], []).append(entity)
    calls: list[Callable[[], Any]] = []
    for partition in by_partition.values():
        for start in range(0, len(partition), MAX_BATCH_SIZE):
            operations = [("upsert", entity, {"mode": mode}) for entity in partition[start : start + MAX_BATCH_SIZE]]
            calls.append(lambda operations=operations: submit_transaction(table.client, operations))
    return calls


def _same_attributes(entity: dict[str, Any], row: SpaceRow) -> bool:
    return all(entity.get(name) == value for name, value in row.attributes().items())
