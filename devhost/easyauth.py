"""Easy Auth (App Service Authentication) emulation for local runs.

Owns the dev sign-in page, the signed session cookie, `/.auth/me`, `/.auth/logout`,
and the principal headers the platform injects for a signed-in request
(`X-MS-CLIENT-PRINCIPAL` as base64 JSON `{auth_typ, claims, name_typ, role_typ}`,
plus `-NAME`, `-ID`, `-IDP`).
https://learn.microsoft.com/azure/app-service/configure-authentication-user-identities
It never trusts a principal header a client sent: the server strips those before
anything reads the request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

COOKIE_NAME = "AppServiceAuthSession"
SESSION_SECONDS = 8 * 3600
PRINCIPAL_HEADER_PREFIX = "x-ms-client-principal"
_USER_ID_NAMESPACE = uuid.UUID("6f1d3c52-7a0e-4b8e-9a51-0c2f5a9e4d11")

LOGIN_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Dev sign-in</title></head>
<body>
<main>
<h1>Sign in (local development)</h1>
<p>This page stands in for App Service Authentication. No password: pick who you are.</p>
<form method="post" action="/.auth/login/dev">
<p><label>User name <input name="user" type="email" required value="admin@contoso.onmicrosoft.com"></label></p>
<p><label><input name="roles" type="checkbox" value="administrator" checked> administrator role</label></p>
<input type="hidden" name="post_login_redirect_uri" value="{redirect}">
<p><button type="submit">Sign in</button></p>
</form>
</main>
</body>
</html>
"""


@dataclass(frozen=True)
class Session:
    user: str
    roles: tuple[str, ...]
    issued_at: int

    @property
    def user_id(self) -> str:
        # Stable per user name, as an object id would be.
        return str(uuid.uuid5(_USER_ID_NAMESPACE, self.user.lower()))

    def claims(self) -> list[dict[str, str]]:
        claims = [
            {"typ": "name", "val": self.user},
            {"typ": "preferred_username", "val": self.user},
            {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": self.user_id},
        ]
        return claims + [{"typ": "roles", "val": role} for role in self.roles]

    def principal_headers(self) -> dict[str, str]:
        principal = {"auth_typ": "aad", "claims": self.claims(), "name_typ": "name", "role_typ": "roles"}
        return {
            "X-MS-CLIENT-PRINCIPAL": base64.b64encode(json.dumps(principal).encode("utf-8")).decode("ascii"),
            "X-MS-CLIENT-PRINCIPAL-NAME": self.user,
            "X-MS-CLIENT-PRINCIPAL-ID": self.user_id,
            "X-MS-CLIENT-PRINCIPAL-IDP": "aad",
        }

    def me(self) -> list[dict[str, Any]]:
        """What `GET /.auth/me` answers for this session (App Service's shape, no tokens)."""
        return [{
            "provider_name": "aad",
            "user_id": self.user,
            "user_claims": self.claims(),
            "expires_on": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.issued_at + SESSION_SECONDS)),
        }]


class SessionSigner:
    """HMAC-SHA256 signed session cookies with a random key kept in the data dir."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> SessionSigner:
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / "session-key"
        if not path.exists():
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(secrets.token_bytes(32))
        return cls(path.read_bytes())

    def _mac(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).hexdigest()

    def issue(self, user: str, roles: list[str]) -> str:
        body = json.dumps({"user": user, "roles": roles, "iat": int(time.time())}, separators=(",", ":"))
        payload = base64.urlsafe_b64encode(body.encode("utf-8")).decode("ascii").rstrip("=")
        return f"{payload}.{self._mac(payload)}"

    def read(self, cookie: str | None) -> Session | None:
        if not cookie or "." not in cookie:
            return None
        payload, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            session = Session(str(data["user"]), tuple(str(r) for r in data["roles"]), int(data["iat"]))
        except (ValueError, KeyError, TypeError):
            return None
        if time.time() - session.issued_at > SESSION_SECONDS:
            return None
        return session


def parse_roles(values: list[str]) -> list[str]:
    """Roles from repeated form fields and/or comma-separated lists, without duplicates."""
    roles: list[str] = []
    for value in values:
        for role in value.split(","):
            role = role.strip()
            if role and role not in roles:
                roles.append(role)
    return roles


def safe_redirect(target: str | None) -> str:
    """Only same-origin relative paths; anything else goes to '/' (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(character) < 32 for character in target):
        return "/"
    return target
