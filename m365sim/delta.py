"""Delta rounds of `calendarView/delta`: the full first round, incremental rounds from a
`$deltatoken`, their pages and tokens (learn.microsoft.com/graph/api/event-delta,
learn.microsoft.com/graph/delta-query-events).

A round is pinned to the mailbox's change sequence: a full round lists every instance in the
window as of sequence S and ends with a deltaLink for S; an incremental round lists what changed
in (since, upto]. Pages are keyset-paged by instance id and render the current state, so a
change during a round shows up in this round or the next (duplicates, never losses). The sorted
ids of a round are kept in a bounded LRU with a TTL so a page costs what it returns; evicted
rounds are recomputed. Tokens are signed, carry the window and the mailbox's generation, and an
unknown, forged, expired or trimmed one raises SyncStateGone (410). It must never scan other
mailboxes, nor hold a lock while rendering.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import collections
import datetime as dt
import hashlib
import hmac
import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from m365sim.events import EventInvalid, Occurrence, occurrences
from m365sim.mailbox import Mailbox, SyncStateGone

ROUND_CACHE_SIZE = 4096
ROUND_CACHE_SECONDS = 600.0


@dataclass(frozen=True)
class Round:
    """Where a client is: the window, the sequence range and the last id it was given."""

    lo: int  # window, epoch seconds
    hi: int
    since: int | None  # None for the full round
    upto: int
    after: str = ""

    def window(self) -> tuple[dt.datetime, dt.datetime]:
        return dt.datetime.fromtimestamp(self.lo, dt.UTC), dt.datetime.fromtimestamp(self.hi, dt.UTC)


@dataclass(frozen=True)
class Page:
    items: list[Occurrence | str]  # an instance to show in full, or the id of a removed one
    skip_token: str | None
    delta_token: str | None


class DeltaSync:
    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or os.urandom(32)
        self._lock = threading.Lock()
        self._rounds: collections.OrderedDict[tuple[Any, ...], tuple[float, list[str], list[bool]]] = (
            collections.OrderedDict())

    # -- rounds ---------------------------------------------------------------------------------

    def start(self, mailbox: Mailbox, lo: dt.datetime, hi: dt.datetime) -> Round:
        with mailbox.lock:
            upto = mailbox.seq
        return Round(int(lo.timestamp()), int(hi.timestamp()), None, upto)

    def from_delta_token(self, mailbox: Mailbox, token: str) -> Round:
        claims = self._open(mailbox, token, "d")
        with mailbox.lock:
            upto = mailbox.seq
        return Round(claims["lo"], claims["hi"], claims["s"], upto)

    def from_skip_token(self, mailbox: Mailbox, token: str) -> Round:
        claims = self._open(mailbox, token, "s")
        return Round(claims["lo"], claims["hi"], claims["f"], claims["u"], claims["a"])

    def page(self, mailbox: Mailbox, position: Round, size: int) -> Page:
        ids, removed = self._entries(mailbox, position)
        start = bisect.bisect_right(ids, position.after) if position.after else 0
        chosen = range(start, min(start + size, len(ids)))
        lo, hi = position.window()
        items: list[Occurrence | str] = []
        for index in chosen:
            if removed[index]:
                items.append(ids[index])
                continue
            try:
                items.append(mailbox.lookup(ids[index]))
            except EventInvalid:
                items.append(ids[index])  # gone since the round began: the client learns it now
        if chosen.stop < len(ids):
            after = ids[chosen.stop - 1]
            skip = self._seal(mailbox, {"k": "s", "lo": position.lo, "hi": position.hi, "f": position.since,
                                        "u": position.upto, "a": after})
            return Page(items, skip, None)
        delta = self._seal(mailbox, {"k": "d", "lo": position.lo, "hi": position.hi, "s": position.upto})
        return Page(items, None, delta)

    def _entries(self, mailbox: Mailbox, position: Round) -> tuple[list[str], list[bool]]:
        key = (mailbox.user_id, mailbox.generation, position.lo, position.hi, position.since, position.upto)
        now = time.monotonic()
        with self._lock:
            cached = self._rounds.get(key)
            if cached is not None and cached[0] > now:
                self._rounds.move_to_end(key)
                return cached[1], cached[2]
        entries = self._compute(mailbox, position)
        ids = [entry[0] for entry in entries]
        removed = [entry[1] for entry in entries]
        with self._lock:
            self._rounds[key] = (now + ROUND_CACHE_SECONDS, ids, removed)
            self._rounds.move_to_end(key)
            while len(self._rounds) > ROUND_CACHE_SIZE:
                self._rounds.popitem(last=False)
        return ids, removed

    def _compute(self, mailbox: Mailbox, position: Round) -> list[tuple[str, bool]]:
        lo, hi = position.window()
        if position.since is None:
            return sorted((item.id, False) for item in mailbox.view(lo, hi))
        changed = mailbox.changed_since(position.since, position.upto)  # SyncStateGone when trimmed
        now = mailbox.current(changed)
        entries: dict[str, bool] = {}
        for event_id, before in changed.items():
            current = now.get(event_id)
            shown = {item.id for item in occurrences(current, lo, hi)} if current is not None else set()
            seen = {item.id for item in occurrences(before, lo, hi)} if before is not None else set()
            entries.update((item_id, False) for item_id in shown)
            entries.update((item_id, True) for item_id in seen - shown)
        return sorted(entries.items())

    # -- tokens ---------------------------------------------------------------------------------

    def _seal(self, mailbox: Mailbox, claims: dict[str, Any]) -> str:
        payload = json.dumps({**claims, "m": mailbox.user_id, "g": mailbox.generation},
                             separators=(",", ":")).encode("utf-8")
        mac = hmac.new(self._secret, payload, hashlib.sha256).digest()[:16]
        return _b64(payload) + "." + _b64(mac)

    def _open(self, mailbox: Mailbox, token: str, kind: str) -> dict[str, Any]:
        try:
            payload_text, mac_text = token.split(".")
            payload, mac = _unb64(payload_text), _unb64(mac_text)
            claims = json.loads(payload)
        except (ValueError, binascii.Error, UnicodeError) as exc:
            raise SyncStateGone("malformed token") from exc
        if not hmac.compare_digest(mac, hmac.new(self._secret, payload, hashlib.sha256).digest()[:16]):
            raise SyncStateGone("unknown token")
        if not isinstance(claims, dict) or claims.get("k") != kind or claims.get("m") != mailbox.user_id:
            raise SyncStateGone("token for another request")
        if claims.get("g") != mailbox.generation:
            raise SyncStateGone("token expired")
        return claims


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
