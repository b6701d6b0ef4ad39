"""Which space a room mailbox most likely is: pure scoring of names, numbers, buildings and floors.

Owns the word rules (filler words such as "room" never make two rooms look alike), the
candidates worth scoring from the snapshot's maps, the score and the best match with its
confidence. It never reads storage.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.spaces.model import IndexEntry

if TYPE_CHECKING:
    from shared.spaces.snapshot import Snapshot

SUGGESTION_THRESHOLD = 0.4
_WORDS = re.compile(r"[^\W_]+")
# Words that say "this is a room" rather than which room; they must not make two rooms look alike.
FILLER_WORDS = frozenset(
    {"room", "rooms", "meeting", "conference", "boardroom", "the", "and", "of", "at", "mtg", "rm"}
)


def words_of(text: str) -> list[str]:
    return _WORDS.findall(text.casefold())


def compact(text: str) -> str:
    return "".join(words_of(text))


def floor_key(floor: str) -> str:
    """Floors compare as labels with leading zeros dropped: "03" is floor "3"."""
    label = floor.strip().casefold()
    return (label.lstrip("0") or "0") if label.isdigit() else label


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort key putting "2" before "10" and "B1" after numbers."""
    parts = re.findall(r"\d+|\D+", text.casefold())
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in parts)


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
        return words_of(self.display_name)

    def email_words(self) -> list[str]:
        return words_of(self.local_part)


def _spans(words: list[str]) -> Iterator[str]:
    """Every contiguous run of words, joined: how a number like SG-03-014 shows up inside a name."""
    for start in range(len(words)):
        for end in range(start + 1, len(words) + 1):
            yield "".join(words[start:end])


def name_score(hint: RoomHint, entry: IndexEntry) -> float:
    """How well the room mailbox's display name and email match the space's number or name, 0..1."""
    display_words = hint.words()
    email_words = hint.email_words()
    number = compact(entry.number)
    # The space number written in the display name or the address is the strongest evidence.
    if number and (number in set(_spans(display_words)) or number in set(_spans(email_words))):
        return 0.95 if len(number) >= 3 else 0.7
    name = compact(entry.name)
    if not name:
        return 0.0
    display_content = [w for w in display_words if w not in FILLER_WORDS]
    if name == compact(hint.display_name) or name == "".join(display_content):
        return 0.9
    if name == compact(hint.local_part) or name == "".join(w for w in email_words if w not in FILLER_WORDS):
        return 0.85
    name_words = set(words_of(entry.name)) - FILLER_WORDS
    if name_words and name_words <= set(display_content):
        # All of the space's name is in the display name, with more words beside it ("SG HQ Orchard 10p").
        return 0.6 + 0.2 * len(name_words) / max(len(set(display_content)), 1)
    if name_words and name_words <= set(email_words):
        return 0.6
    ratio = difflib.SequenceMatcher(None, name, "".join(display_content) or compact(hint.display_name)).ratio()
    return 0.6 * ratio if ratio >= 0.75 else 0.0


def location_adjustment(hint: RoomHint, entry: IndexEntry) -> float:
    """A boost when the mailbox's building and floor agree with the space's, a penalty when they differ."""
    adjustment = 0.0
    if hint.building and hint.building.strip():
        building = compact(hint.building)
        candidates = {compact(entry.building_name), compact(entry.building_id)}
        building_words = set(words_of(hint.building))
        if building in candidates or any(
            building_words and building_words <= set(words_of(text))
            for text in (entry.building_name, entry.building_id)
        ):
            adjustment += 0.1
        else:
            adjustment -= 0.2
    if hint.floor is not None and str(hint.floor).strip():
        adjustment += 0.05 if floor_key(str(hint.floor)) == floor_key(entry.floor) else -0.1
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
    for word in set(words) - FILLER_WORDS:
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
