"""The secret `clientState` that proves a notification is ours.

Owns deriving a calendar's clientState (HMAC-SHA256 of the account, the room and a
per-calendar nonce under STATE_SIGNING_KEY) and checking a notification's against the hash
kept on the calendar, in constant time. The clientState itself is never stored: only its
SHA-256 is, on the calendar row.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def client_state_for(signing_key: bytes, account_id: str, email: str, nonce: str) -> str:
    """The clientState of a calendar's subscription: 43 base64url characters (Graph allows 128)."""
    digest = hmac.new(signing_key, f"client-state|{account_id}|{email}|{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def client_state_hash(client_state: str) -> str:
    return hashlib.sha256(client_state.encode("utf-8", "surrogatepass")).hexdigest()


def client_state_matches(client_state: Any, stored_hash: str | None) -> bool:
    """Constant-time check of a notification's clientState against the stored hash."""
    if not isinstance(client_state, str) or not stored_hash or len(client_state) > 256:
        return False
    return hmac.compare_digest(client_state_hash(client_state), stored_hash)
