"""Admin consent: the signed `state`, the consent URL, and the callback's verdict.

Owns the ConsentStates table and the rules of DESIGN §5 (Consent): `state` is
signed, single-use, short-lived and bound to the account and the admin who
started it, and is verified before anything else; the tenant returned on the
redirect is never trusted on its own; the grant is proven with an app-only token
and Graph calls before an account is verified. It never redirects anywhere but
the product's own admin page, and never keeps a token.
https://learn.microsoft.com/entra/identity-platform/v2-admin-consent
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from shared.accounts import Account, AccountRepository, Capability, change_status
from shared.audit import AuditLog
from shared.errors import ConcurrencyConflict, DomainError
from shared.graph import GraphClient, GraphError
from shared.identity import GRAPH_DEFAULT_SCOPE, TokenProvider, TokenRefused
from shared.models import AccountStatus, Principal, iso, utc_now
from shared.storage import Table

log = logging.getLogger("rcc.consent")

STATE_PARTITION = "state"
STATE_LIFETIME = timedelta(minutes=10)

# Microsoft's documented parameters on the admin-consent redirect (success and error).
SUCCESS_PARAMETERS = {"admin_consent", "tenant", "scope", "state"}
ERROR_PARAMETERS = {"error", "error_description", "error_uri", "error_subcode", "state", "trace_id",
                    "correlation_id", "timestamp", "error_codes", "admin_consent", "tenant"}

# The application permissions the product asks for, and what each is for.
REQUIRED_PERMISSIONS = {
    "Place.Read.All": "list the tenant's rooms and room lists (discover rooms)",
    "User.Read.All": "find each room's mailbox",
    "Calendars.ReadWrite": "subscribe to room calendars' changes",
}


class InvalidState(DomainError):
    code = "invalid_state"

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass(frozen=True)
class ConsentOutcome:
    """Where to send the admin's browser, and what happened."""

    code: str
    account_id: str | None
    message: str
    redirect_url: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_state(key: bytes, nonce: str, account_id: str, expires_at: int) -> str:
    payload = _b64(f"{nonce}|{account_id}|{expires_at}".encode())
    mac = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{mac}"


def verify_state_signature(key: bytes, state: str, now: float | None = None) -> tuple[str, str]:
    """(nonce, account id) of a well-signed, unexpired state; InvalidState otherwise."""
    if not state or len(state) > 512 or state.count(".") != 1:
        raise InvalidState("invalid_state", "the consent response carried no valid state; start again")
    payload, mac = state.split(".")
    expected = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    # Bytes, not str: compare_digest refuses non-ASCII strings, and state is attacker-controlled.
    if not hmac.compare_digest(mac.encode("utf-8", "replace"), expected.encode()):
        raise InvalidState("invalid_state", "the consent response's state was not issued by this product")
    try:
        nonce, account_id, expires_text = _unb64(payload).decode().split("|")
        expires_at = int(expires_text)
    except ValueError:
        raise InvalidState("invalid_state", "the consent response's state is malformed") from None
    if (now if now is not None else time.time()) > expires_at:
        raise InvalidState("expired", "the consent took too long and its link expired; press Authorize again")
    return nonce, account_id


class ConsentService:
    def __init__(
        self,
        *,
        states: Table,
        accounts: AccountRepository,
        audit: AuditLog,
        tokens: TokenProvider,
        graph: GraphClient,
        signing_key: bytes,
        login_base_url: str,
        client_id: str,
        redirect_uri: str,
        admin_page_url: str,
        on_reauthorized: Any = None,
    ) -> None:
        self.states = states
        self.accounts = accounts
        self.audit = audit
        self.tokens = tokens
        self.graph = graph
        self.signing_key = signing_key
        self.login_base_url = login_base_url
        self.client_id = client_id
        self.redirect_uri = redirect_uri
        self.admin_page_url = admin_page_url
        self.on_reauthorized = on_reauthorized

    def start(self, account: Account, admin: Principal, purpose: str) -> str:
        """A fresh single-use state for this account and admin, and the consent URL."""
        nonce = secrets.token_urlsafe(24)
        expires = utc_now() + STATE_LIFETIME
        self.states.insert(
            {
                "PartitionKey": STATE_PARTITION,
                "RowKey": nonce,
                "account_id": account.account_id,
                "tenant_id": account.tenant_id,
                "admin": admin.name,
                "purpose": purpose,
                "expires_at": iso(expires),
                "used": False,
            }
        )
        state = sign_state(self.signing_key, nonce, account.account_id, int(expires.timestamp()))
        query = urlencode(
            {"client_id": self.client_id, "scope": GRAPH_DEFAULT_SCOPE, "redirect_uri": self.redirect_uri,
             "state": state}
        )
        return f"{self.login_base_url}/{account.tenant_id}/v2.0/adminconsent?{query}"

    def forget_account(self, account_id: str) -> None:
        for entity in self.states.query_all(
            "PartitionKey eq @pk and account_id eq @account", parameters={"pk": STATE_PARTITION, "account": account_id}
        ):
            self.states.delete(STATE_PARTITION, entity["RowKey"])

    def complete(self, query: dict[str, str], principal: Principal | None) -> ConsentOutcome:
        """Judge Microsoft's redirect. State first; then the parameters; then the grant."""
        try:
            state_row = self._claim_state(query.get("state") or "", principal)
        except InvalidState as refused:
            log.warning("consent callback refused: %s", refused.outcome)
            self.audit.record(principal.name if principal else "anonymous", "consent.callback", "-",
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

    def _claim_state(self, state: str, principal: Principal | None) -> dict[str, Any]:
        nonce, account_id = verify_state_signature(self.signing_key, state)
        row = self.states.get(STATE_PARTITION, nonce)
        if row is None or row.get("account_id") != account_id:
            raise InvalidState("invalid_state", "the consent response's state is unknown; press Authorize again")
        if row.get("used"):
            raise InvalidState("replayed", "this consent response was already used; press Authorize again")
        expires_at = datetime.fromisoformat(row["expires_at"].replace("Z", "+00:00"))
        if datetime.now(UTC) > expires_at:
            raise InvalidState("expired", "the consent took too long and its link expired; press Authorize again")
        if principal is None or principal.name.lower() != str(row.get("admin", "")).lower():
            raise InvalidState("wrong_admin", "consent must be completed by the administrator who started it, "
                                              "signed in to this page in the same browser")
        row["used"] = True
        try:
            self.states.update(row)  # If-Match: of two callbacks with one state, one wins
        except ConcurrencyConflict:
            raise InvalidState("replayed", "this consent response was already used; press Authorize again") from None
        return row

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


def probe_capabilities(graph: GraphClient, tenant_id: str) -> list[Capability]:
    """Which of the product's capabilities work in the tenant, by asking Graph.

    Raises GraphError only when Graph could not be reached at all."""
    results: list[Capability] = []
    room_email: str | None = None

    def probe(name: str, permission: str, path: str, params: dict[str, str]) -> Any:
        try:
            body = graph.get(tenant_id, path, params)
        except GraphError as error:
            if error.status == 0 or error.is_transient:
                raise
            detail = f"{error.graph_code}: {error.message}"
            results.append(Capability(name, permission, False, detail[:300]))
            return None
        results.append(Capability(name, permission, True))
        return body

    rooms = probe("list rooms", "Place.Read.All", "places/microsoft.graph.room", {"$top": "1"})
    if rooms and rooms.get("value"):
        room_email = rooms["value"][0].get("emailAddress")
    users = probe("read mailboxes", "User.Read.All", "users", {"$top": "1", "$select": "id,mail"})
    if room_email is None and users and users.get("value"):
        room_email = users["value"][0].get("mail") or users["value"][0].get("id")
    if room_email:
        try:
            graph.get(tenant_id, f"users/{room_email}/calendar", {"$select": "id"})
            results.append(Capability("read room calendars", "Calendars.ReadWrite", True))
        except GraphError as error:
            if error.status == 0 or error.is_transient:
                raise
            if error.is_access_policy_denial:
                results.append(Capability(
                    "read room calendars", "", True,
                    "limited by the tenant's application access policy: only rooms in its scope will connect"))
            elif error.status == 404:
                results.append(Capability("read room calendars", "Calendars.ReadWrite", True,
                                          "not checked: no mailbox to try it on"))
            else:
                results.append(Capability("read room calendars", "Calendars.ReadWrite", False,
                                          f"{error.graph_code}: {error.message}"[:300]))
    return results
