"""What every Graph route shares: the request and result types, Graph's error body, paging with
`$top`/`$skiptoken`, `$select`, the `Prefer` header and JSON bodies.

Owns Graph's wire conventions (learn.microsoft.com/graph/query-parameters,
learn.microsoft.com/graph/errors). It must never decide permissions or touch tenant state beyond
reading the roles of the caller.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from werkzeug.datastructures import MultiDict

from m365sim.state import SimState, Tenant
from m365sim.tokens import TokenClaims

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 999


@dataclass
class GraphResult:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def graph_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> GraphResult:
    inner = {"date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), "request-id": str(uuid.uuid4()),
             "client-request-id": str(uuid.uuid4())}
    return GraphResult(status, {"error": {"code": code, "message": message, "innerError": inner}}, headers or {})


def insufficient_privileges() -> GraphResult:
    return graph_error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def too_many_requests(retry_after: int, message: str, code: str = "TooManyRequests") -> GraphResult:
    return graph_error(429, code, message, {"Retry-After": str(max(1, retry_after))})


def method_not_allowed() -> GraphResult:
    return graph_error(405, "Request_BadRequest", "The specified HTTP method is not allowed for the request target.")


def segment_not_found(segment: str) -> GraphResult:
    return graph_error(400, "BadRequest", f"Resource not found for the segment '{segment}'.")


def parse_graph_time(value: Any) -> float | None:
    """A DateTimeOffset from a request (Z, offset, or naive = UTC; up to 7 fraction digits)."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


@dataclass
class Call:
    """One Graph request as the dispatcher sees it."""

    method: str
    path: str  # below /v1.0, no leading slash
    query: MultiDict
    headers: Mapping[str, str]
    body: bytes
    base_url: str  # https://host:port/v1.0
    in_batch: bool = False

    def segments(self) -> list[str]:
        return [s for s in self.path.split("/") if s]

    def prefer(self) -> dict[str, str]:
        """`Prefer` preferences by lower-cased name (`odata.maxpagesize=50`, `outlook.timezone="UTC"`)."""
        preferences: dict[str, str] = {}
        for header in _header_values(self.headers, "Prefer"):
            for part in header.split(","):
                name, _, value = part.strip().partition("=")
                if name:
                    preferences[name.strip().lower()] = value.strip().strip('"')
        return preferences


def _header_values(headers: Mapping[str, str], name: str) -> list[str]:
    getlist = getattr(headers, "getlist", None)
    if callable(getlist):
        return list(getlist(name))
    return [v for k, v in headers.items() if k.lower() == name.lower()]


@dataclass
class Context:
    tenant: Tenant
    claims: TokenClaims

    def has_any(self, state: SimState, roles: frozenset[str]) -> bool:
        with state.lock:
            effective = self.claims.roles & self.tenant.effective_roles()
        return bool(effective & roles)


def page_size(call: Call, default: int, maximum: int, honour_prefer: bool = True) -> int | GraphResult:
    """`$top` if given, else `Prefer: odata.maxpagesize` (where the API honours it), else `default`;
    never above `maximum`."""
    top_text = call.query.get("$top")
    if top_text is not None:
        if not top_text.isdigit() or int(top_text) < 1:
            return graph_error(400, "BadRequest", f"Invalid value '{top_text}' for $top query option.")
        return min(int(top_text), maximum)
    preferred = call.prefer().get("odata.maxpagesize") if honour_prefer else None
    if preferred is not None and preferred.isdigit() and int(preferred) >= 1:
        return min(int(preferred), maximum)
    return default


def page(call: Call, items: Sequence[Any], path: str, default: int = DEFAULT_PAGE_SIZE,
         maximum: int = MAX_PAGE_SIZE, honour_prefer: bool = False,
         render: Callable[[Any], dict[str, Any]] | None = None) -> GraphResult:
    """One page of `items` with an absolute `@odata.nextLink` (`$skiptoken` = offset) when more remain.
    With `render`, items are turned into JSON only for the page answered."""
    size = page_size(call, default, maximum, honour_prefer)
    if isinstance(size, GraphResult):
        return size
    offset = 0
    skiptoken = call.query.get("$skiptoken")
    if skiptoken is not None:
        try:
            offset = int(base64.urlsafe_b64decode(skiptoken.encode("ascii")).decode("ascii").removeprefix("o:"))
        except (ValueError, UnicodeDecodeError):
            return graph_error(400, "BadRequest", "The $skiptoken is invalid.")
    chunk = [select(render(item) if render else item, call.query) for item in items[offset: offset + size]]
    body: dict[str, Any] = {"@odata.context": f"https://graph.microsoft.com/v1.0/$metadata#{path}", "value": chunk}
    if offset + size < len(items):
        params = [(k, v) for k, v in call.query.items(multi=True) if k != "$skiptoken"]
        token = base64.urlsafe_b64encode(f"o:{offset + size}".encode("ascii")).decode("ascii")
        params.append(("$skiptoken", token))
        body["@odata.nextLink"] = f"{call.base_url}/{path}?{urlencode(params)}"
    return GraphResult(200, body)


def select(item: dict[str, Any], query: MultiDict) -> dict[str, Any]:
    chosen = query.get("$select")
    if not chosen:
        return item
    wanted = {s.strip().lower() for s in chosen.split(",")} | {"id", "@odata.type", "@odata.etag"}
    return {k: v for k, v in item.items() if k.lower() in wanted}


def json_body(call: Call) -> Any:
    try:
        return json.loads(call.body.decode("utf-8")) if call.body else None
    except (ValueError, UnicodeDecodeError):
        return None
