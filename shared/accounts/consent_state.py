"""Admin-consent `state`: signed, single-use, short-lived, bound to the account and the admin.

Owns the ConsentStates table (PartitionKey `state`, RowKey = the nonce) and the HMAC that
signs what goes out in the consent URL. A state is verified (signature, expiry) before its row
is read, and claimed with the row's ETag so of two callbacks carrying one state, one wins. It
never decides whether consent succeeded (`shared.accounts.consent` does).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.errors import ConcurrencyConflict, DomainError
from shared.models import Principal, iso, utc_now
from shared.storage import Table

STATE_PARTITION = "state"
STATE_LIFETIME = timedelta(minutes=10)


class InvalidState(DomainError):
    code = "invalid_state"

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


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


class ConsentStates:
    def __init__(self, table: Table, signing_key: bytes) -> None:
        self.table = table
        self.signing_key = signing_key

    def issue(self, account_id: str, tenant_id: str, admin: Principal, purpose: str) -> str:
        """A fresh single-use state for this account and admin: its row first, then its signed text."""
        nonce = secrets.token_urlsafe(24)
        expires = utc_now() + STATE_LIFETIME
        self.table.insert(
            {
                "PartitionKey": STATE_PARTITION,
                "RowKey": nonce,
                "account_id": account_id,
                "tenant_id": tenant_id,
                "admin": admin.name,
                "purpose": purpose,
                "expires_at": iso(expires),
                "used": False,
            }
        )
        return sign_state(self.signing_key, nonce, account_id, int(expires.timestamp()))

    def claim(self, state: str, principal: Principal | None) -> dict[str, Any]:
        """The state's row, marked used; `InvalidState` saying why when it cannot be used."""
        nonce, account_id = verify_state_signature(self.signing_key, state)
        row = self.table.get(STATE_PARTITION, nonce)
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
            self.table.update(row)  # If-Match: of two callbacks with one state, one wins
        except ConcurrencyConflict:
            raise InvalidState("replayed", "this consent response was already used; press Authorize again") from None
        return row

    def forget_account(self, account_id: str) -> None:
        for entity in self.table.query_all(
            "PartitionKey eq @pk and account_id eq @account", parameters={"pk": STATE_PARTITION, "account": account_id}
        ):
            self.table.delete(STATE_PARTITION, entity["RowKey"])
