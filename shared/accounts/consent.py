"""Admin consent: the consent URL, and the callback's verdict.

Owns the rules of the consent flow (docs/architecture.md, "Consent"): the `state` is claimed
before anything else (`consent_state`); the callback accepts only Microsoft's documented
parameters; the tenant returned on the redirect is never trusted on its own; the grant is
proven with an app-only token and Graph calls before an account is verified. It never
redirects anywhere but the product's own admin page, and never keeps a token.
https://learn.microsoft.com/entra/identity-platform/v2-admin-consent
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from shared.accounts.capabilities import probe_capabilities
from shared.accounts.consent_state import ConsentStates, InvalidState
from shared.accounts.model import Account, change_status
from shared.accounts.repository import AccountRepository
from shared.audit import AuditLog
from shared.errors import ConcurrencyConflict, DomainError
from shared.graph import GraphClient, GraphError, TokenProvider, TokenRefused
from shared.graph.identity import GRAPH_DEFAULT_SCOPE
from shared.models import AccountStatus, Principal, iso, utc_now

log = logging.getLogger("rcc.consent")

# Microsoft's documented parameters on the admin-consent redirect (success and error).
SUCCESS_PARAMETERS = {"admin_consent", "tenant", "scope", "state"}
ERROR_PARAMETERS = {"error", "error_description", "error_uri", "error_subcode", "state", "trace_id",
                    "correlation_id", "timestamp", "error_codes", "admin_consent", "tenant"}


@dataclass(frozen=True)
class ConsentOutcome:
    """Where to send the admin's browser, and what happened."""

    code: str
    account_id: str | None
    message: str
    redirect_url: str


class ConsentService:
    def __init__(
        self,
        *,
        states: ConsentStates,
        accounts: AccountRepository,
        audit: AuditLog,
        graph: GraphClient,
        login_base_url: str,
        client_id: str,
        redirect_uri: str,
        admin_page_url: str,
        on_reauthorized: Callable[[str], object] | None = None,
        on_verified: Callable[[str], object] | None = None,
    ) -> None:
        self.states = states
        self.accounts = accounts
        self.audit = audit
        self.graph = graph
        self.tokens: TokenProvider = graph.tokens
        self.login_base_url = login_base_url
        self.client_id = client_id
        self.redirect_uri = redirect_uri
        self.admin_page_url = admin_page_url
        self.on_reauthorized = on_reauthorized
        self.on_verified = on_verified

    def start(self, account: Account, admin: Principal, purpose: str) -> str:
        """A fresh single-use state for this account and admin, and the consent URL."""
        state = self.states.issue(account.account_id, account.tenant_id, admin, purpose)
        query = urlencode(
            {"client_id": self.client_id, "scope": GRAPH_DEFAULT_SCOPE, "redirect_uri": self.redirect_uri,
             "state": state}
        )
        return f"{self.login_base_url}/{account.tenant_id}/v2.0/adminconsent?{query}"

    def forget_account(self, account_id: str) -> None:
        self.states.forget_account(account_id)

    def complete(self, query: dict[str, str], principal: Principal | None) -> ConsentOutcome:
        """Judge Microsoft's redirect. State first; then the parameters; then the grant."""
        try:
            state_row = self.states.claim(query.get("state") or "", principal)
        except InvalidState as refused:
            log.warning("consent callback refused: %s", refused.outcome)
            # Anyone can call this: counted (a row a minute), not a row each, or a loop floods the log.
            self.audit.count(principal.name if principal else "anonymous", "consent.callback", "-",
                             outcome=refused.outcome)
            return self._outcome(refused.outcome, None, refused.message)

        account = self.accounts.find(state_row["account_id"])
        if account is None:
            return self._outcome("account_removed", None, "the account was removed while consent was in progress")
        admin = state_row["admin"]
        was_verified_before = account.verified_at is not None

        allowed = ERROR_PARAMETERS if "error" in query else SUCCESS_PARAMETERS
        unexpected = sorted(set(query) - allowed)
        if unexpected:
            return self._fail(account, admin, "invalid_response",
                              "Microsoft's response carried unexpected parameters; press Authorize again")
        if "error" in query:
            code, message = _explain_consent_error(query.get("error", ""), query.get("error_description", ""))
            return self._fail(account, admin, code, message)
        if query.get("admin_consent", "").lower() != "true":
            return self._fail(account, admin, "invalid_response", "Microsoft did not confirm the admin consent")
        if (query.get("tenant") or "").lower() != account.tenant_id:
            return self._fail(account, admin, "tenant_mismatch",
                              "consent was given in a different tenant than this account's; sign in with an "
                              f"administrator of {account.tenant_name}")
        return self._prove_grant(account, admin, was_verified_before)

    def _prove_grant(self, account: Account, admin: str, was_verified_before: bool) -> ConsentOutcome:
        self.tokens.forget(account.tenant_id)  # a token cached before consent may lack the new roles
        try:
            token = self.tokens.acquire(account.tenant_id)
        except TokenRefused as refused:
            return self._fail(account, admin, "grant_unproven",
                              f"consent was reported, but {refused.message}; wait a minute and re-authenticate")
        except DomainError as error:
            return self._fail(account, admin, "grant_unproven", error.message)
        try:
            capabilities = probe_capabilities(self.graph, account.tenant_id)
        except GraphError as error:
            return self._fail(account, admin, "graph_unreachable",
                              f"Microsoft Graph could not be checked ({error.message}); re-authenticate shortly")
        change_status(account, AccountStatus.VERIFIED)
        account.consented_by = admin
        account.verified_at = iso(utc_now())
        account.granted_permissions = list(token.roles)
        account.capabilities = capabilities
        account.last_error = None
        self.accounts.save(account)
        missing = account.missing_permissions
        message = "Account Verified" + (f"; missing permissions: {', '.join(missing)}" if missing else "")
        self.audit.record(admin, "account.verified", account.tenant_name, outcome="ok", missing=missing)
        if was_verified_before and self.on_reauthorized is not None:
            self.on_reauthorized(account.account_id)
        if self.on_verified is not None:
            try:
                self.on_verified(account.account_id)
            except Exception:  # noqa: BLE001 - a follow-up (the readiness check) never undoes a verified consent
                log.warning("the follow-up of a verified consent failed for %s", account.account_id, exc_info=True)
        return self._outcome("verified", account.account_id, message)

    def _fail(self, account: Account, admin: str, code: str, message: str) -> ConsentOutcome:
        # A failed re-authentication must not demote an account whose old grant may still work.
        if account.status in (AccountStatus.PENDING_CONSENT, AccountStatus.CONSENT_FAILED):
            change_status(account, AccountStatus.CONSENT_FAILED, message)
        account.last_error = message
        try:
            self.accounts.save(account)
        except ConcurrencyConflict:
            log.warning("account %s changed during consent; outcome %s not stored", account.account_id, code)
        self.audit.record(admin, "account.consent", account.tenant_name, outcome=code, message=message)
        return self._outcome(code, account.account_id, message)

    def _outcome(self, code: str, account_id: str | None, message: str) -> ConsentOutcome:
        query = {"consent": code}
        if account_id:
            query["account"] = account_id
        return ConsentOutcome(code, account_id, message, f"{self.admin_page_url}/?{urlencode(query)}")


def _explain_consent_error(error: str, description: str) -> tuple[str, str]:
    if "AADSTS65004" in description or error == "access_denied":
        return "declined", "consent was cancelled or declined on Microsoft's page; press Authorize to try again"
    if "AADSTS90094" in description or "AADSTS90099" in description or error == "consent_required":
        return "not_admin", ("the account that signed in cannot grant admin consent; sign in as a Global "
                             "Administrator or Privileged Role Administrator of the tenant")
    code = description.split(":")[0].strip() if description.startswith("AADSTS") else error
    return "consent_error", f"Microsoft reported an error during consent ({code[:40]}); press Authorize to try again"
