"""App-only tokens for Microsoft Graph, one MSAL application per tenant.

Owns MSAL: a `ConfidentialClientApplication` per tenant authority, built once
per process and reused with its in-memory token cache (MSAL looks there before
asking Entra ID). It never stores a token or the client secret anywhere but
memory, and never logs either.
https://learn.microsoft.com/entra/msal/python/
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

import msal
import requests

from shared.errors import DomainError

log = logging.getLogger("rcc.identity")

# The Graph resource's default scope: every application permission granted by admin consent.
GRAPH_DEFAULT_SCOPE = "https://graph.microsoft.com/.default"

# AADSTS codes that mean "this tenant no longer lets the app in": consent missing or
# revoked, app disabled or deleted there. https://learn.microsoft.com/entra/identity-platform/reference-error-codes
CONSENT_ERROR_CODES = {700016, 65001, 7000112, 500011, 50020, 90094, 65004}


class TokenRefused(DomainError):
    """Entra ID refused an app-only token for the tenant."""

    code = "token_refused"

    def __init__(self, message: str, *, error: str, error_codes: list[int], consent_problem: bool) -> None:
        super().__init__(message)
        self.error = error
        self.error_codes = error_codes
        self.consent_problem = consent_problem


class IdentityUnavailable(DomainError):
    """Entra ID could not be reached or answered unusably."""

    code = "identity_unavailable"


@dataclass(frozen=True)
class AppToken:
    access_token: str
    roles: tuple[str, ...]

    def __repr__(self) -> str:  # never print the token
        return f"AppToken(roles={self.roles!r})"


def token_roles_hint(access_token: str) -> tuple[str, ...]:
    """The `roles` claim of an app-only token, read without verification.

    Microsoft advises against parsing tokens for APIs you don't own (Graph): this is
    only a hint shown to admins; what works is found by probing Graph."""
    try:
        payload = access_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        roles = claims.get("roles") or []
        return tuple(sorted(str(role) for role in roles))
    except (IndexError, ValueError, AttributeError):
        return ()


class TokenProvider:
    """Gets app-only Graph tokens for any tenant that consented."""

    def __init__(self, *, login_base_url: str, client_id: str, client_secret: str, http: requests.Session) -> None:
        self._login_base_url = login_base_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._http = http
        self._apps: dict[str, msal.ConfidentialClientApplication] = {}
        self._lock = threading.Lock()

    def _app(self, tenant_id: str) -> msal.ConfidentialClientApplication:
        with self._lock:
            app = self._apps.get(tenant_id)
            if app is None:
                try:
                    # instance_discovery=False: the authority is always a tenant-specific
                    # one we were configured with; MSAL needs no global discovery call.
                    app = msal.ConfidentialClientApplication(
                        self._client_id,
                        client_credential=self._client_secret,
                        authority=f"{self._login_base_url}/{tenant_id}",
                        http_client=self._http,
                        instance_discovery=False,
                    )
                except (requests.RequestException, ValueError) as error:
                    log.warning("MSAL could not load the authority for tenant %s: %s", tenant_id, type(error).__name__)
                    raise IdentityUnavailable(
                        "Microsoft's sign-in service could not be reached for this tenant; try again shortly"
                    ) from None
                self._apps[tenant_id] = app
            return app

    def acquire(self, tenant_id: str) -> AppToken:
        app = self._app(tenant_id)
        try:
            result: dict[str, Any] = app.acquire_token_for_client(scopes=[GRAPH_DEFAULT_SCOPE])
        except requests.RequestException:
            raise IdentityUnavailable("Microsoft's sign-in service could not be reached; try again shortly") from None
        if "access_token" in result:
            return AppToken(result["access_token"], token_roles_hint(result["access_token"]))
        codes = [int(code) for code in result.get("error_codes") or [] if str(code).isdigit()]
        error = str(result.get("error") or "unknown_error")
        consent_problem = bool(set(codes) & CONSENT_ERROR_CODES) or error in {"unauthorized_client", "invalid_grant"}
        first_line = str(result.get("error_description") or "").split("\r")[0].split("\n")[0][:300]
        if consent_problem:
            message = f"the tenant refused a token: consent is missing or was revoked ({first_line})"
        elif error == "invalid_client":
            message = f"the app's credential was refused: check ENTRA_CLIENT_SECRET ({first_line})"
        else:
            message = f"the tenant refused a token ({first_line})"
        raise TokenRefused(message, error=error, error_codes=codes, consent_problem=consent_problem)

    def forget(self, tenant_id: str) -> None:
        """Drop the tenant's app and cache (after consent is granted again, or on removal)."""
        with self._lock:
            self._apps.pop(tenant_id, None)

    def discover_tenant_id(self, tenant: str) -> str | None:
        """The GUID behind a tenant id or verified domain, from the public OpenID
        configuration (its issuer names the tenant); None when no such tenant exists."""
        url = f"{self._login_base_url}/{tenant}/v2.0/.well-known/openid-configuration"
        try:
            response = self._http.get(url, timeout=15)
        except requests.RequestException as error:
            log.warning("tenant discovery for %s failed: %s", tenant, error)
            raise IdentityUnavailable("Microsoft's sign-in service could not be reached; try again shortly") from None
        if response.status_code in (400, 404):
            return None
        if response.status_code != 200:
            raise IdentityUnavailable(f"Microsoft's sign-in service answered {response.status_code}; try again")
        try:
            issuer = str(response.json()["issuer"])
        except (ValueError, KeyError):
            raise IdentityUnavailable("Microsoft's sign-in service answered unusably; try again") from None
        parts = [part for part in issuer.split("/") if part]
        return next((part.lower() for part in parts if len(part) == 36 and part.count("-") == 4), None)
