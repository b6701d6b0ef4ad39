"""Microsoft Graph over one `requests.Session`, with app-only tokens per tenant.

Owns the HTTP conversation with Graph: bearer tokens, `@odata.nextLink` paging,
`Retry-After` on 429/5xx, Graph's DateTimeOffset text, and turning Graph's error JSON
into `GraphError`. A token is never sent to any host but the configured Graph base URL.
https://learn.microsoft.com/graph/throttling
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from shared.errors import DomainError
from shared.graph.identity import TokenProvider
from shared.models import iso, parse_iso

log = logging.getLogger("rcc.graph")

RETRYABLE_STATUSES = {429, 500, 502, 503, 504}


class GraphError(DomainError):
    """Graph answered with an error (or could not be reached: status 0)."""

    code = "graph_error"

    def __init__(self, status: int, graph_code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.graph_code = graph_code
        self.retry_after = retry_after

    @property
    def is_transient(self) -> bool:
        return self.status == 0 or self.status in RETRYABLE_STATUSES

    @property
    def is_access_policy_denial(self) -> bool:
        """403 from an Exchange application access policy or RBAC for Applications."""
        return self.status == 403 and self.graph_code == "ErrorAccessDenied"

    @property
    def is_missing_permission(self) -> bool:
        return self.status == 403 and self.graph_code == "Authorization_RequestDenied"


def header_seconds(headers: Mapping[str, Any], name: str = "Retry-After") -> float | None:
    """A header holding seconds (Retry-After), found whatever its case; None when absent or unreadable."""
    for key, value in headers.items():
        if key.lower() == name.lower():
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                return None
    return None


def retry_after_seconds(response: requests.Response) -> float | None:
    return header_seconds(response.headers)


def graph_time(moment: datetime) -> str:
    """A moment as Graph takes a DateTimeOffset."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def graph_moment(text: Any) -> str | None:
    """Graph's DateTimeOffset (seven fraction digits) as our ISO form."""
    if not isinstance(text, str) or not text:
        return None
    cleaned = text.strip()
    if "." in cleaned:
        head, _, tail = cleaned.partition(".")
        zone = tail.lstrip("0123456789")
        cleaned = head + (zone or "Z")
    try:
        return iso(parse_iso(cleaned))
    except ValueError:
        return None


def batch_item_error(item: Mapping[str, Any]) -> GraphError:
    """The error of one `$batch` answer item (`{id, status, headers, body}`)."""
    body = item.get("body") or {}
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    return GraphError(int(item.get("status") or 0), str(error.get("code") or f"HTTP{item.get('status')}"),
                      str(error.get("message") or "no message")[:500],
                      header_seconds(item.get("headers") or {}))


def error_from(response: requests.Response) -> GraphError:
    try:
        body = response.json().get("error") or {}
    except (ValueError, AttributeError):
        body = {}
    code = str(body.get("code") or f"HTTP{response.status_code}")
    message = str(body.get("message") or response.reason or "no message")[:500]
    return GraphError(response.status_code, code, message, retry_after_seconds(response))


class GraphClient:
    """Calls Graph for a tenant. Interactive callers get a short, bounded wait on
    throttling; background callers pass `max_wait_seconds=0` and schedule retries."""

    def __init__(
        self,
        *,
        base_url: str,
        tokens: TokenProvider,
        http: requests.Session,
        max_wait_seconds: float = 5.0,
        timeout_seconds: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._origin = urlsplit(self.base_url)
        self.tokens = tokens
        self.http = http
        self.max_wait_seconds = max_wait_seconds
        self.timeout_seconds = timeout_seconds

    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith("https://") or path_or_url.startswith("http://"):
            parts = urlsplit(path_or_url)
            # A nextLink must point back at Graph: never hand our token to another host.
            if (parts.scheme, parts.netloc) != (self._origin.scheme, self._origin.netloc):
                raise GraphError(0, "UnexpectedHost", "Graph returned a link to another host; refusing to follow it")
            return path_or_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}"

    def request(
        self,
        tenant_id: str,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        max_wait_seconds: float | None = None,
        timeout_seconds: float | None = None,
    ) -> Any:
        """Send one request; returns the JSON body (None for 204). Raises GraphError."""
        budget = self.max_wait_seconds if max_wait_seconds is None else max_wait_seconds
        waited = 0.0
        token_refreshed = False
        while True:
            token = self.tokens.acquire(tenant_id)
            try:
                response = self.http.request(
                    method,
                    self.url(path),
                    params=params,
                    json=json,
                    headers={**(headers or {}), "Authorization": f"Bearer {token.access_token}",
                             "Accept": "application/json"},
                    timeout=timeout_seconds or self.timeout_seconds,
                )
            except requests.RequestException as error:
                # A timeout may come after Graph committed a write: callers that write say so.
                code = "Timeout" if isinstance(error, requests.Timeout) else "Unreachable"
                raise GraphError(0, code, f"Microsoft Graph could not be reached ({type(error).__name__})") from None
            if response.status_code < 400:
                if response.status_code == 204 or not response.content:
                    return None
                try:
                    return response.json()
                except ValueError:
                    raise GraphError(response.status_code, "InvalidJson", "Graph answered with invalid JSON") from None
            error = error_from(response)
            if error.status == 401 and not token_refreshed:
                # A cached token can outlive the grant (consent revoked, app removed): get a
                # fresh one once; if the tenant refuses it, TokenRefused says why.
                self.tokens.forget(tenant_id)
                token_refreshed = True
                continue
            if error.is_transient:
                delay = error.retry_after if error.retry_after is not None else min(2.0 ** (waited + 1), 4.0)
                if waited + delay <= budget:
                    log.info("Graph %s %s answered %s; retrying in %.1fs", method, path, error.status, delay)
                    time.sleep(delay)  # honour Retry-After: never send before it
                    waited += delay
                    continue
            raise error

    def get(self, tenant_id: str, path: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return self.request(tenant_id, "GET", path, params=params, **kwargs)

    def get_all(
        self, tenant_id: str, path: str, params: dict[str, Any] | None = None, *, max_pages: int = 1000,
        max_wait_seconds: float | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every item of a collection, following `@odata.nextLink` (which carries the query)."""
        next_url: str | None = path
        next_params = params
        for _ in range(max_pages):
            if next_url is None:
                return
            page = self.get(tenant_id, next_url, next_params, max_wait_seconds=max_wait_seconds) or {}
            yield from page.get("value") or []
            next_url = page.get("@odata.nextLink")
            next_params = None
        log.warning("stopped following %s after %d pages", path, max_pages)
