"""What an administrator does with calendar accounts: add, re-authorize, remove.

Owns the order of steps across tables (account, consent state, calendars, audit)
so each step can be repeated safely. It never talks HTTP or reads a request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from shared.accounts.capabilities import probe_capabilities
from shared.accounts.consent import ConsentService
from shared.accounts.model import Account, change_status, new_account, parse_tenant
from shared.accounts.repository import AccountRepository
from shared.audit import AuditLog
from shared.errors import Invalid
from shared.graph import GraphClient, TokenRefused
from shared.models import AccountStatus, Principal


class AccountCalendars(Protocol):
    """What removing or re-authorizing an account needs from the calendars."""

    def remove_all_calendars(self, account_id: str, actor: str) -> int: ...

    def requeue_after_reauthorization(self, account_id: str) -> int: ...


class AccountService:
    def __init__(
        self,
        *,
        accounts: AccountRepository,
        consent: ConsentService,
        graph: GraphClient,
        audit: AuditLog,
        calendars: AccountCalendars,
        forget: Callable[[str], object] | None = None,
    ) -> None:
        self.graph = graph
        self.accounts = accounts
        self.consent = consent
        self.tokens = graph.tokens
        self.audit = audit
        self.calendars = calendars
        self.forget = forget

    def add(self, tenant_input: Any, admin: Principal) -> dict[str, Any]:
        """A pending account for the tenant and the URL of Microsoft's consent page."""
        tenant = parse_tenant(tenant_input)
        tenant_id = self.tokens.discover_tenant_id(tenant)
        if tenant_id is None:
            raise Invalid(f"no Microsoft 365 tenant was found for {tenant}; check the tenant ID or domain")
        account = self.accounts.add(new_account(tenant_id, tenant, admin.name))
        consent_url = self.consent.start(account, admin, purpose="add")
        self.audit.record(admin.name, "account.add", tenant, outcome="pending_consent", tenant_id=tenant_id)
        return {"account": account.to_api(), "consent_url": consent_url}

    def reauthorize(self, account_id: str, admin: Principal) -> dict[str, Any]:
        """A fresh consent URL. Nothing else changes until the callback proves the grant."""
        account = self.accounts.get(account_id)
        consent_url = self.consent.start(account, admin, purpose="reauthorize")
        self.audit.record(admin.name, "account.reauthorize", account.tenant_name, outcome="consent_started")
        return {"account": account.to_api(), "consent_url": consent_url}

    def list(self) -> list[dict[str, Any]]:
        return [a.to_api() for a in sorted(self.accounts.all(), key=lambda a: a.tenant_name)]

    def get(self, account_id: str) -> dict[str, Any]:
        return self.accounts.get(account_id).to_api()

    def remove(self, account_id: str, admin: Principal) -> dict[str, Any]:
        """Calendars (and their subscriptions) first, then states, then the account:
        a removal interrupted midway can simply be repeated."""
        account = self.accounts.get(account_id)
        removed_calendars = self.calendars.remove_all_calendars(account.account_id, admin.name)
        self.consent.forget_account(account.account_id)
        if self.forget is not None:
            self.forget(account.account_id)  # what other capabilities keep of it (readiness)
        self.accounts.delete(account)
        self.tokens.forget(account.tenant_id)
        self.audit.record(admin.name, "account.remove", account.tenant_name, outcome="ok",
                          calendars_removed=removed_calendars)
        return {"removed": account.account_id, "calendars_removed": removed_calendars}

    def check(self, account_id: str, admin: Principal) -> dict[str, Any]:
        """Check the connection now: a token and Graph probes. A verified account whose
        consent was revoked becomes `needs_reauth`; capabilities are refreshed."""
        account = self.accounts.get(account_id)
        if account.status not in (AccountStatus.VERIFIED, AccountStatus.NEEDS_REAUTH):
            return account.to_api()
        try:
            self.tokens.acquire(account.tenant_id)
            capabilities = probe_capabilities(self.graph, account.tenant_id)
        except TokenRefused as refused:
            if refused.consent_problem:
                self.mark_needs_reauth(account, "the tenant no longer grants access (consent revoked or the app "
                                                "removed): re-authenticate the account")
            else:
                account.last_error = refused.message
                self.accounts.save(account)
            return account.to_api()
        if account.status is AccountStatus.NEEDS_REAUTH:
            change_status(account, AccountStatus.VERIFIED)
        account.capabilities = capabilities
        account.last_error = None
        self.accounts.save(account)
        self.audit.record(admin.name, "account.check", account.tenant_name, outcome="ok",
                          missing=account.missing_permissions)
        return account.to_api()

    def mark_needs_reauth(self, account: Account, reason: str) -> Account:
        """Tokens can no longer be acquired for a verified account."""
        if account.status is AccountStatus.NEEDS_REAUTH:
            return account
        change_status(account, AccountStatus.NEEDS_REAUTH, reason)
        account.last_error = reason
        self.accounts.save(account)
        self.audit.record("connector", "account.needs_reauth", account.tenant_name, outcome=reason)
        return account
