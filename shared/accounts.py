"""Calendar accounts: one Microsoft 365 tenant each, keyed by the tenant's GUID.

Owns the Accounts table and the account's life: add (pending consent), the
outcome of consent, needs re-authentication, removal. Status changes go through
`AccountStatus.check`; every write is ETag-guarded. It never stores a token or
a secret, and it never decides consent itself (that is `consent.py`).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from shared.errors import Invalid, NotFound
from shared.models import AccountStatus, iso, utc_now
from shared.storage import Table

ACCOUNT_PARTITION = "account"
MAX_TENANT_INPUT = 256

_GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# A DNS name of ASCII labels (IDN look-alikes must be typed in their xn-- form).
_DOMAIN = re.compile(r"^(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")
# Multi-tenant aliases name no tenant: consent and tokens need a specific one.
_ALIASES = {"common", "organizations", "consumers"}


def parse_tenant(value: Any) -> str:
    """A tenant GUID or verified domain, lower-cased; `Invalid` naming the problem otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid("enter the tenant ID: a GUID such as 6f1c2a4e-… or a domain such as contoso.onmicrosoft.com")
    text = value.strip()
    if len(text) > MAX_TENANT_INPUT:
        raise Invalid(f"the tenant ID is {len(text)} characters long; a GUID or domain is at most 253")
    if not text.isascii():
        raise Invalid(
            "the tenant ID contains non-ASCII characters (perhaps look-alike letters); "
            "type the GUID or the domain in plain ASCII"
        )
    lowered = text.lower()
    if lowered in _ALIASES:
        raise Invalid(f"'{lowered}' names no single tenant; enter the tenant's GUID or verified domain")
    if _GUID.match(lowered) or _DOMAIN.match(lowered):
        return lowered
    raise Invalid("the tenant ID must be a GUID (8-4-4-4-12 hex digits) or a domain such as contoso.onmicrosoft.com")


@dataclass
class Capability:
    """Whether one thing the product needs works in the tenant, found by probing Graph."""

    name: str
    permission: str
    ok: bool
    detail: str = ""


@dataclass
class Account:
    account_id: str
    tenant_id: str
    tenant_name: str
    status: AccountStatus
    created_by: str
    created_at: str
    status_reason: str | None = None
    consented_by: str | None = None
    verified_at: str | None = None
    granted_permissions: list[str] = field(default_factory=list)
    capabilities: list[Capability] = field(default_factory=list)
    last_error: str | None = None
    etag: str | None = None

    @property
    def missing_permissions(self) -> list[str]:
        return sorted({c.permission for c in self.capabilities if not c.ok and c.permission})

    def to_entity(self) -> dict[str, Any]:
        return {
            "PartitionKey": ACCOUNT_PARTITION,
            "RowKey": self.account_id,
            "tenant_id": self.tenant_id,
            "tenant_name": self.tenant_name,
            "status": self.status.value,
            "status_reason": self.status_reason or "",
            "created_by": self.created_by,
            "created_at": self.created_at,
            "consented_by": self.consented_by or "",
            "verified_at": self.verified_at or "",
            "granted_permissions": json.dumps(self.granted_permissions),
            "capabilities": json.dumps([asdict(c) for c in self.capabilities]),
            "last_error": self.last_error or "",
            "_etag": self.etag,
        }

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> Account:
        return cls(
            account_id=entity["RowKey"],
            tenant_id=entity["tenant_id"],
            tenant_name=entity.get("tenant_name") or entity["tenant_id"],
            status=AccountStatus(entity["status"]),
            status_reason=entity.get("status_reason") or None,
            created_by=entity.get("created_by") or "",
            created_at=entity.get("created_at") or "",
            consented_by=entity.get("consented_by") or None,
            verified_at=entity.get("verified_at") or None,
            granted_permissions=json.loads(entity.get("granted_permissions") or "[]"),
            capabilities=[Capability(**c) for c in json.loads(entity.get("capabilities") or "[]")],
            last_error=entity.get("last_error") or None,
            etag=entity.get("_etag"),
        )

    def to_api(self) -> dict[str, Any]:
        return {
            "id": self.account_id,
            "tenant_id": self.tenant_id,
            "tenant_name": self.tenant_name,
            "status": self.status.value,
            "status_label": self.status.label,
            "status_reason": self.status_reason,
            "created_by": self.created_by,
            "created_at": self.created_at,
            "consented_by": self.consented_by,
            "verified_at": self.verified_at,
            "granted_permissions": self.granted_permissions,
            "capabilities": [asdict(c) for c in self.capabilities],
            "missing_permissions": self.missing_permissions,
            "last_error": self.last_error,
        }


class AccountRepository:
    def __init__(self, table: Table) -> None:
        self.table = table

    def get(self, account_id: str) -> Account:
        entity = self.table.get(ACCOUNT_PARTITION, account_id) if _GUID.match(account_id or "") else None
        if entity is None:
            raise NotFound(f"there is no calendar account {account_id!r}")
        return Account.from_entity(entity)

    def find(self, account_id: str) -> Account | None:
        try:
            return self.get(account_id)
        except NotFound:
            return None

    def add(self, account: Account) -> Account:
        saved = self.table.insert(
            account.to_entity(), exists_message=f"the tenant {account.tenant_name} is already added as an account"
        )
        account.etag = saved["_etag"]
        return account

    def save(self, account: Account) -> Account:
        """ETag-guarded replace: a concurrent change is a ConcurrencyConflict, never overwritten."""
        saved = self.table.update(account.to_entity())
        account.etag = saved["_etag"]
        return account

    def all(self) -> list[Account]:
        return [
            Account.from_entity(e)
            for e in self.table.query_all("PartitionKey eq @pk", parameters={"pk": ACCOUNT_PARTITION})
        ]

    def delete(self, account: Account) -> None:
        self.table.delete(ACCOUNT_PARTITION, account.account_id)


def new_account(tenant_id: str, tenant_name: str, created_by: str) -> Account:
    return Account(
        account_id=tenant_id,
        tenant_id=tenant_id,
        tenant_name=tenant_name,
        status=AccountStatus.PENDING_CONSENT,
        created_by=created_by,
        created_at=iso(utc_now()) or "",
    )


def change_status(account: Account, status: AccountStatus, reason: str | None = None) -> Account:
    """The one way an account's status changes."""
    account.status = account.status.check(status)
    account.status_reason = reason
    return account
