"""A calendar account: one Microsoft 365 tenant, keyed by the tenant's GUID, and its row.

Owns what an account holds (status, consent outcome, granted permissions, probed capabilities),
how it is written to the Accounts table, and the one way its status changes (through
`AccountStatus.check`). It never stores a token or a secret.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from shared.errors import Invalid
from shared.identifiers import DOMAIN_NAME, GUID
from shared.models import AccountStatus, iso, utc_now

ACCOUNT_PARTITION = "account"
MAX_TENANT_INPUT = 256

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
    if GUID.match(lowered) or DOMAIN_NAME.match(lowered):
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
