"""Outbound calls Graph makes to the subscriber: the validation handshake, change notifications
and lifecycle notifications (learn.microsoft.com/graph/change-notifications-delivery-webhooks,
learn.microsoft.com/graph/change-notifications-lifecycle-events).

Owns the wire shape of those calls and the connection pool they share. It must never be called
while holding `SimState.lock`. Real Graph only calls https URLs; the simulator also calls http
on loopback so a local Functions host (plain http) can receive them.
"""

from __future__ import annotations

import ipaddress
import time
import uuid
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

# Graph gives the endpoint 10 s to answer the validation request.
VALIDATION_TIMEOUT_SECONDS = 10.0
# Graph wants notifications acknowledged within 3 s; the simulator waits longer and reports the time.
NOTIFICATION_TIMEOUT_SECONDS = 30.0
# Connections kept per subscriber host: subscriptions are created ~30 at a time by the connector.
POOL_CONNECTIONS_PER_HOST = 64


def _pooled_session() -> requests.Session:
    """One Session for every outbound call, so a subscriber that keeps connections alive gets
    them reused instead of a new TCP (and TLS) connection per handshake or notification.

    urllib3's pools are thread-safe; pool_block=False opens extra connections rather than wait
    when more than POOL_CONNECTIONS_PER_HOST calls to one host are in flight. Per-call arguments
    (verify, timeout) and trust_env stay as they were with `requests.post`; cookies a subscriber
    sets are refused, as Graph sends none.
    """
    session = requests.Session()
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    adapter = HTTPAdapter(pool_connections=16, pool_maxsize=POOL_CONNECTIONS_PER_HOST, pool_block=False)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


_session = _pooled_session()


def is_allowed_notification_url(url: str) -> bool:
    """https anywhere (as Graph), or http on a loopback host (simulator-only allowance)."""
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    if parts.scheme == "https":
        return True
    if parts.scheme != "http":
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


def _with_query(url: str, extra: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(extra.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def validation_handshake(url: str, ca_bundle: str | None) -> str | None:
    """POST `?validationToken=…` as Graph does; None when the endpoint answered correctly,
    else why it failed."""
    validation_token = (
        f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
    )
    try:
        response = _session.post(
            _with_query(url, {"validationToken": validation_token}),
            data=b"",
            headers={"Content-Type": "text/plain; charset=utf-8"},
            timeout=VALIDATION_TIMEOUT_SECONDS,
            allow_redirects=False,
            verify=ca_bundle or True,
        )
    except requests.RequestException as exc:
        return f"{type(exc).__name__} calling {url}"
    if response.status_code != 200:
        return f"{url} answered {response.status_code}"
    content_type = response.headers.get("Content-Type", "")
    if not content_type.lower().startswith("text/plain"):
        return f"{url} answered Content-Type {content_type!r}, not text/plain"
    if response.text != validation_token:
        return f"{url} did not echo the validation token"
    return None


def post_json(url: str, payload: dict[str, Any], ca_bundle: str | None,
              timeout: float = NOTIFICATION_TIMEOUT_SECONDS) -> dict[str, Any]:
    """POST a notification; report the status the subscriber answered and how long it took."""
    started = time.monotonic()
    try:
        response = _session.post(url, json=payload, timeout=timeout, allow_redirects=False,
                                 verify=ca_bundle or True)
    except requests.RequestException as exc:
        return {"status": None, "error": f"{type(exc).__name__}", "elapsedMs": int((time.monotonic() - started) * 1000)}
    return {"status": response.status_code, "elapsedMs": int((time.monotonic() - started) * 1000),
            "payload": payload}
