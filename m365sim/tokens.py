"""App-only access tokens: issue and verify RS256 JWTs shaped like Entra's tokens for Graph.

Owns the token format (claims `aud`, `tid`, `appid`, `roles`, `exp` one hour) and the JWKS.
It must never accept a token it did not sign, nor one for another audience or an expired one.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

GRAPH_AUDIENCE = "https://graph.microsoft.com"
# Graph also accepts its application id as audience.
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
TOKEN_LIFETIME_SECONDS = 3600
VERIFIED_TOKENS_KEPT = 10_000


class InvalidToken(Exception):
    """Why a bearer token was refused (the message mirrors Graph's 401 messages)."""


@dataclass(frozen=True)
class TokenClaims:
    tenant_id: str
    app_id: str
    roles: frozenset[str]
    raw: dict[str, Any]


def _b64url_uint(value: int) -> str:
    data = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class TokenIssuer:
    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self._key = key
        public_der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = base64.urlsafe_b64encode(hashlib.sha256(public_der).digest()[:15]).decode("ascii")
        self._verified: dict[str, TokenClaims] = {}
        self._verified_lock = threading.Lock()

    def issue(self, *, tenant_id: str, app_id: str, app_display_name: str, service_principal_id: str,
              roles: list[str]) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": GRAPH_AUDIENCE,
            # Graph app-only tokens carry the v1 issuer.
            "iss": f"https://sts.windows.net/{tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME_SECONDS,
            "app_displayname": app_display_name,
            "appid": app_id,
            "appidacr": "1",
            "idp": f"https://sts.windows.net/{tenant_id}/",
            "idtyp": "app",
            "oid": service_principal_id,
            "sub": service_principal_id,
            "tid": tenant_id,
            "uti": uuid.uuid4().hex[:22],
            "ver": "1.0",
        }
        # `roles` is absent when nothing is granted, as in Entra's tokens.
        if roles:
            claims["roles"] = sorted(roles)
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid, "x5t": self.kid})

    def verify(self, token: str) -> TokenClaims:
        """Check the signature once per token (clients send the same token for an hour);
        the lifetime is checked on every call."""
        cached = self._verified.get(token)
        if cached is not None:
            if cached.raw["exp"] <= time.time():
                raise InvalidToken("Lifetime validation failed, the token is expired.")
            return cached
        claims = self._verify_signed(token)
        with self._verified_lock:
            if len(self._verified) >= VERIFIED_TOKENS_KEPT:
                self._verified.clear()
            self._verified[token] = claims
        return claims

    def _verify_signed(self, token: str) -> TokenClaims:
        if not token:
            raise InvalidToken("Access token is empty.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("IDX14100: JWT is not well formed.") from exc
        if header.get("kid") != self.kid:
            raise InvalidToken("Access token validation failure. Invalid signing key.")
        try:
            claims = jwt.decode(
                token,
                self._key.public_key(),
                algorithms=["RS256"],
                audience=[GRAPH_AUDIENCE, GRAPH_APP_ID],
                options={"require": ["exp", "aud", "tid", "appid"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("Lifetime validation failed, the token is expired.") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidToken("Access token validation failure. Invalid audience.") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("Access token validation failure.") from exc
        return TokenClaims(
            tenant_id=str(claims["tid"]).lower(),
            app_id=str(claims["appid"]),
            roles=frozenset(claims.get("roles", [])),
            raw=claims,
        )

    def jwks(self) -> dict[str, Any]:
        numbers = self._key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": self.kid,
                    "x5t": self.kid,
                    "n": _b64url_uint(numbers.n),
                    "e": _b64url_uint(numbers.e),
                    "alg": "RS256",
                }
            ]
        }
