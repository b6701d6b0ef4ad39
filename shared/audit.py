"""The audit log: who did what to which thing, with what outcome.

Owns the Audit table (PartitionKey = yyyy-mm, RowKey = inverted timestamp + id,
so a partition reads newest first). Entries are written once and never changed —
except counted ones: what anyone can cause without signing in (a consent callback
with a bad `state`) is one row per minute per actor, action and outcome, whose
`count` goes up with an ETag-guarded write, so a loop cannot push the admins' entries
off the first pages or grow the table faster than a row a minute. It never records a
secret, a token or a file's content.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
import uuid
from datetime import datetime
from typing import Any

from shared.errors import ConcurrencyConflict, Conflict, Invalid
from shared.models import iso, utc_now
from shared.storage import Table, decode_continuation, encode_continuation

log = logging.getLogger("rcc.audit")

# Far enough in the future that inverted keys stay positive and fixed-width.
_MAX_MICROSECONDS = 10**17
MONTHS_KEPT_BROWSABLE = 36
# Instances counting the same minute race on one row; each lost race re-reads it. Enough
# attempts that a burst from a handful of instances loses nothing; past them it is logged.
COUNT_ATTEMPTS = 12
MAX_FILTER_LENGTH = 256  # what an entry keeps of its actor


def _inverted(moment: datetime) -> str:
    return f"{_MAX_MICROSECONDS - int(moment.timestamp() * 1_000_000):017d}"


def _row_key(moment: datetime) -> str:
    return f"{_inverted(moment)}-{uuid.uuid4().hex[:12]}"


def _counter_key(moment: datetime, actor: str, action: str, outcome: str) -> str:
    """The same key for every count of one minute (sorted as that minute's newest entry)."""
    last_of_minute = moment.replace(second=59, microsecond=999_999)
    digest = hashlib.sha256(f"{actor}\n{action}\n{outcome}".encode()).hexdigest()[:12]
    return f"{_inverted(last_of_minute)}-{digest}"


def _month_before(month: str) -> str:
    year, number = int(month[:4]), int(month[5:])
    return f"{year - 1}-12" if number == 1 else f"{year}-{number - 1:02d}"


class AuditLog:
    def __init__(self, table: Table) -> None:
        self.table = table

    def record(self, actor: str, action: str, target: str, outcome: str = "ok", **detail: Any) -> None:
        moment = utc_now()
        self.table.insert(
            {
                "PartitionKey": moment.strftime("%Y-%m"),
                "RowKey": _row_key(moment),
                "at": iso(moment),
                "actor": actor[:256],
                "action": action,
                "target": target[:512],
                "outcome": outcome[:1000],
                "detail": json.dumps(detail, default=str)[:30000] if detail else "",
            }
        )

    def count(self, actor: str, action: str, target: str, outcome: str) -> None:
        """Count one occurrence in this minute's row for (actor, action, outcome); written
        If-Match (or inserted once), so concurrent instances add up instead of overwriting."""
        moment = utc_now()
        actor = actor[:256]
        key = {"PartitionKey": moment.strftime("%Y-%m"),
               "RowKey": _counter_key(moment, actor, action, outcome[:1000])}
        for attempt in range(COUNT_ATTEMPTS):
            entity = self.table.get(key["PartitionKey"], key["RowKey"])
            try:
                if entity is None:
                    self.table.insert({**key, "at": iso(moment), "first_at": iso(moment), "actor": actor,
                                       "action": action, "target": target[:512], "outcome": outcome[:1000],
                                       "detail": "", "count": 1})
                else:
                    entity.update(at=iso(moment), count=int(entity.get("count") or 0) + 1)
                    self.table.update(entity)
                return
            except (Conflict, ConcurrencyConflict):
                time.sleep(random.uniform(0.005, 0.02) * (attempt + 1))  # noqa: S311 - jitter, not a secret
        log.warning("audit: one %s %s by %s not counted after %d lost races", action, outcome, actor,
                    COUNT_ATTEMPTS)

    def page(self, *, page_size: int = 50, continuation_token: str | None = None, actor: str | None = None,
             action: str | None = None) -> dict[str, Any]:
        """Newest first, across months, only the entries of `actor` and/or `action` when given;
        the token carries the month and the table's token."""
        state = decode_continuation(continuation_token) or {}
        month = state.get("month") or utc_now().strftime("%Y-%m")
        table_token = state.get("table")
        wanted = {name: value for name, value in (("actor", actor), ("action", action)) if value}
        for name, value in wanted.items():
            if len(value) > MAX_FILTER_LENGTH:
                raise Invalid(f"{name} is at most {MAX_FILTER_LENGTH} characters")
        query_filter = " and ".join(["PartitionKey eq @month", *(f"{name} eq @{name}" for name in wanted)])
        items: list[dict[str, Any]] = []
        for _ in range(MONTHS_KEPT_BROWSABLE):
            page = self.table.query_filled_page(
                query_filter,
                parameters={"month": month, **wanted},
                page_size=page_size - len(items),
                continuation_token=table_token,
            )
            items.extend(page.items)
            if page.continuation_token:
                return {"items": [_entry(e) for e in items],
                        "continuation_token": encode_continuation({"month": month, "table": page.continuation_token})}
            month, table_token = _month_before(month), None
            if len(items) >= page_size:
                return {"items": [_entry(e) for e in items],
                        "continuation_token": encode_continuation({"month": month, "table": None})}
        return {"items": [_entry(e) for e in items], "continuation_token": None}


def _entry(entity: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": entity.get("at"),
        "actor": entity.get("actor"),
        "action": entity.get("action"),
        "target": entity.get("target"),
        "outcome": entity.get("outcome"),
        "detail": json.loads(entity["detail"]) if entity.get("detail") else {},
        # A counted row stands for `count` occurrences, the first at `first_at`, the last at `at`.
        "count": int(entity.get("count") or 1),
        "first_at": entity.get("first_at") or entity.get("at"),
    }
