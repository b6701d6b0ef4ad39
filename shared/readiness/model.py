"""What a readiness check found: how much of the tenant the app can read, and what is wrong with each room.

Owns the kinds of finding with their words and fixes, and the Readiness table that keeps the
last check per account (PartitionKey = account id; RowKey `tenant` for the app's access, `room|`
+ email for each room checked). It never calls Graph and never stores anything of a person's
mailbox: the probe keeps only whether it could read a calendar's metadata.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from shared.storage import Table


class Access(StrEnum):
    TENANT_WIDE = "tenant_wide"
    ROOMS_ONLY = "rooms_only"
    UNKNOWN = "unknown"


class Kind(StrEnum):
    TENANT_WIDE = "tenant_wide_access"
    SCOPED = "scoped_to_rooms"
    ACCESS_UNKNOWN = "access_unknown"
    NOT_FOUND = "room_not_found"
    NOT_A_ROOM = "not_a_room_mailbox"
    NOT_REACHABLE = "not_reachable_by_graph"
    DENIED = "access_denied_by_scope"
    SUBJECTS_REPLACED = "subjects_replaced_by_organizer"
    CANNOT_TELL_PURPOSE = "mailbox_purpose_unknown"
    NOT_CHECKED = "not_checked"


@dataclass(frozen=True)
class Finding:
    kind: Kind
    severity: str  # "ok" | "warning" | "error"
    reason: str
    fix: str = ""
    room: str | None = None

    def to_api(self) -> dict[str, Any]:
        return {**asdict(self), "kind": self.kind.value}

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Finding:
        return cls(kind=Kind(data["kind"]), severity=data["severity"], reason=data["reason"], fix=data.get("fix", ""),
                   room=data.get("room"))


@dataclass
class TenantAccess:
    access: Access
    detail: str
    checked_at: str
    findings: list[Finding] = field(default_factory=list)


TENANT_ROW = "tenant"
ROOM_PREFIX = "room|"


class ReadinessRecords:
    def __init__(self, table: Table) -> None:
        self.table = table

    def save_access(self, account_id: str, access: TenantAccess) -> None:
        self.table.upsert({"PartitionKey": account_id, "RowKey": TENANT_ROW, "access": access.access.value,
                           "detail": access.detail, "checked_at": access.checked_at,
                           "findings": json.dumps([f.to_api() for f in access.findings])})

    def save_rooms(self, account_id: str, checked_at: str, rooms: dict[str, list[Finding]]) -> None:
        """Each room's findings (none: the room is fine), in transactions of one partition."""
        self.table.submit_in_batches(("upsert", {
            "PartitionKey": account_id, "RowKey": ROOM_PREFIX + email, "checked_at": checked_at,
            "findings": json.dumps([f.to_api() for f in findings])}) for email, findings in rooms.items())

    def access(self, account_id: str) -> TenantAccess | None:
        entity = self.table.get(account_id, TENANT_ROW)
        if entity is None:
            return None
        return TenantAccess(Access(entity.get("access") or "unknown"), entity.get("detail") or "",
                            entity.get("checked_at") or "",
                            [Finding.from_api(f) for f in json.loads(entity.get("findings") or "[]")])

    def rooms(self, account_id: str) -> dict[str, tuple[str, list[Finding]]]:
        """email -> (checked at, findings) of every room checked."""
        found: dict[str, tuple[str, list[Finding]]] = {}
        for entity in self.table.query_all("PartitionKey eq @a and RowKey ge @from and RowKey lt @to",
                                           parameters={"a": account_id, "from": ROOM_PREFIX, "to": "room}"}):
            findings = [Finding.from_api(f) for f in json.loads(entity.get("findings") or "[]")]
            found[entity["RowKey"][len(ROOM_PREFIX):]] = (entity.get("checked_at") or "", findings)
        return found

    def forget(self, account_id: str) -> None:
        keys = [entity["RowKey"] for entity in self.table.query_all("PartitionKey eq @a", parameters={"a": account_id},
                                                                     select=["RowKey"])]
        self.table.submit_repeatable([("delete", {"PartitionKey": account_id, "RowKey": key}) for key in keys])
