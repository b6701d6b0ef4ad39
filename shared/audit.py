"""The audit log: who did what to which thing, with what outcome.

Owns the Audit table (PartitionKey = yyyy-mm, RowKey = inverted timestamp + id,
so a partition reads newest first). Entries are written once and never changed;
it never records a secret, a token or a file's content.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from shared.models import iso, utc_now
from shared.storage import Table, decode_continuation, encode_continuation

# Far enough in the future that inverted keys stay positive and fixed-width.
_MAX_MICROSECONDS = 10**17
MONTHS_KEPT_BROWSABLE = 36


def _row_key(moment: datetime) -> str:
    inverted = _MAX_MICROSECONDS - int(moment.timestamp() * 1_000_000)
    return f"{inverted:017d}-{uuid.uuid4().hex[:12]}"


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

    def page(self, *, page_size: int = 50, continuation_token: str | None = None) -> dict[str, Any]:
        """Newest first, across months; the token carries the month and the table's token."""
        state = decode_continuation(continuation_token) or {}
        month = state.get("month") or utc_now().strftime("%Y-%m")
        table_token = state.get("table")
        items: list[dict[str, Any]] = []
        for _ in range(MONTHS_KEPT_BROWSABLE):
            page = self.table.query_filled_page(
                "PartitionKey eq @month",
                parameters={"month": month},
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
    }
