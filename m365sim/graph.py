"""Microsoft Graph v1.0 as the product uses it: the entry point for every request under `/v1.0`,
with Graph's authentication, fault knobs, limits and JSON batching.

Owns request dispatch: the directory (graph_directory.py), mailbox resources (graph_calendar.py)
and subscriptions (graph_subscriptions.py) answer the routes. One call of `GraphApi.handle` is one Graph
request (a `$batch` item is one too), so knobs, limits and the request log apply per item as in
Graph (learn.microsoft.com/graph/json-batching, learn.microsoft.com/graph/throttling-limits).
It must never call out while holding the state lock, and never serve a request whose token it
did not verify.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from werkzeug.datastructures import MultiDict

from m365sim.delta import DeltaSync
from m365sim.graph_calendar import CalendarApi
from m365sim.graph_directory import DirectoryApi
from m365sim.graph_subscriptions import SubscriptionsApi
from m365sim.limits import Limits
from m365sim.notifier import Notifier
from m365sim.odata import Call, Context, GraphResult, graph_error, json_body, method_not_allowed, too_many_requests
from m365sim.state import SimState
from m365sim.tokens import InvalidToken, TokenIssuer

__all__ = ["Call", "GraphApi", "GraphResult", "graph_error"]

MAX_BATCH_REQUESTS = 20
# Outlook runs up to 4 requests of one $batch at a time (learn.microsoft.com/graph/json-batching,
# learn.microsoft.com/graph/throttling-limits#outlook-service-limits).
BATCH_ITEMS_IN_PARALLEL = 4

_log = logging.getLogger("m365sim.graph")


class GraphApi:
    def __init__(self, state: SimState, issuer: TokenIssuer, notifier: Notifier,
                 outbound_ca_bundle: str | None = None) -> None:
        self.state = state
        self.issuer = issuer
        self.limits = Limits(state)
        self.directory = DirectoryApi(state)
        self.delta = DeltaSync()
        self.calendar = CalendarApi(state, notifier, self.delta)
        self.subscriptions = SubscriptionsApi(state, outbound_ca_bundle)

    # -- entry point ---------------------------------------------------------------------------

    def handle(self, call: Call, authorization: str) -> GraphResult:
        entry = self.state.record_request(call.method, "/v1.0/" + call.path, None, "graph-batch-item"
                                          if call.in_batch else "graph")
        try:
            result = self._handle(call, authorization, entry)
        except Exception:  # noqa: BLE001 - a simulator bug must still answer like a server would, and be logged
            _log.exception("m365sim failed on %s /v1.0/%s", call.method, call.path)
            result = graph_error(500, "InternalServerError", "m365sim failed to handle the request.")
        if result.status == 429:
            entry["retry_after"] = int(result.headers.get("Retry-After", "0"))
        self.state.record_answer(entry, result.status)
        result.headers.setdefault("request-id", str(uuid.uuid4()))
        client_request_id = call.headers.get("client-request-id")
        if client_request_id:
            result.headers["client-request-id"] = client_request_id
        return result

    def _authenticate(self, authorization: str) -> Context | GraphResult:
        def unauthorized(message: str) -> GraphResult:
            return graph_error(401, "InvalidAuthenticationToken", message, {
                "WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/'
                'oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"'})

        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return unauthorized("Access token is empty.")
        try:
            claims = self.issuer.verify(token.strip())
        except InvalidToken as exc:
            return unauthorized(str(exc))
        tenant = self.state.tenants.get(claims.tenant_id)
        if tenant is None:
            return unauthorized("Access token validation failure. Invalid tenant.")
        if claims.app_id.lower() != self.state.app.client_id.lower():
            return unauthorized("Access token validation failure. Unknown application.")
        with self.state.lock:
            revoked = not tenant.consented or tenant.knobs.consent_revoked
        if revoked:
            # Real Graph keeps honouring an issued token until it expires (up to ~1 h) after consent is
            # revoked; the simulator refuses it at once so tests need not wait out the token lifetime.
            return unauthorized("Access token validation failure. The application's consent in this tenant was "
                                "revoked.")
        return Context(tenant, claims)

    def _handle(self, call: Call, authorization: str, entry: dict[str, Any]) -> GraphResult:
        auth = self._authenticate(authorization)
        if isinstance(auth, GraphResult):
            return auth
        ctx = auth
        entry["tenant"] = ctx.tenant.id
        knobs = ctx.tenant.knobs
        with self.state.lock:
            throttle_rate, error_rate = knobs.throttle_rate, knobs.graph_5xx_rate
            retry_after, latency_ms = knobs.retry_after_seconds, knobs.latency_ms
        segments = call.segments()
        lowered = [s.lower() for s in segments]
        if lowered == ["$batch"]:
            # The envelope is not throttled; each item is, on its own (429 inside a 200).
            if call.in_batch:
                return graph_error(400, "BadRequest", "Nested batch requests are not supported.")
            return self._batch(call, authorization)
        if throttle_rate and random.random() < throttle_rate:
            return too_many_requests(retry_after, "Application is over its MailboxConcurrency limit.")
        if error_rate and random.random() < error_rate:
            return graph_error(503, "serviceNotAvailable", "Service is temporarily unavailable. Try again later.",
                               {"Retry-After": str(max(1, retry_after))})
        if lowered[:1] == ["subscriptions"] and call.method in ("POST", "PATCH", "DELETE"):
            limited = self.limits.count_subscription_write(ctx.tenant)
            if limited is not None:
                return limited
        mailbox_key = self.limits.mailbox_key(ctx.tenant, lowered, segments)
        if mailbox_key is not None:
            refused = self.limits.enter_mailbox(ctx.tenant, mailbox_key)
            if refused is not None:
                return refused
        try:
            if latency_ms:
                time.sleep(latency_ms / 1000)
            return self._route(call, ctx, segments, lowered)
        finally:
            if mailbox_key is not None:
                self.limits.leave_mailbox(ctx.tenant, mailbox_key)

    # -- routing -------------------------------------------------------------------------------

    def _route(self, call: Call, ctx: Context, segments: list[str], lowered: list[str]) -> GraphResult:
        method = call.method
        if lowered == ["organization"]:
            return self.directory.organization(ctx) if method == "GET" else method_not_allowed()
        if lowered[:1] == ["users"] and len(segments) >= 3:
            return self.calendar.handle(call, ctx, segments, lowered)
        if lowered[:1] == ["users"]:
            return self.directory.users(call, ctx, segments, lowered) if method == "GET" else method_not_allowed()
        if lowered[:1] == ["places"]:
            return self.directory.places(call, ctx, segments, lowered) if method == "GET" else method_not_allowed()
        if lowered[:1] == ["subscriptions"]:
            return self.subscriptions.handle(call, ctx, segments, lowered)
        first = segments[0] if segments else ""
        return graph_error(400, "BadRequest", f"Resource not found for the segment '{first}'.")

    # -- batching ------------------------------------------------------------------------------

    def _batch(self, call: Call, authorization: str) -> GraphResult:
        if call.method != "POST":
            return graph_error(405, "BadRequest", "Method not allowed.")
        body = json_body(call)
        requests_ = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests_, list) or not all(isinstance(r, dict) for r in requests_):
            return graph_error(400, "BadRequest", "Invalid batch payload format.")
        if len(requests_) > MAX_BATCH_REQUESTS:
            return graph_error(400, "BadRequest", f"The number of batch requests cannot exceed {MAX_BATCH_REQUESTS}.")
        ids = [str(r.get("id", "")) for r in requests_]
        if any(not i for i in ids):
            return graph_error(400, "BadRequest", "Each batch request must have an id.")
        if len(set(ids)) != len(ids):
            return graph_error(400, "BadRequest", "Batch request ids must be unique.")
        items: list[tuple[str, Call]] = []
        for request_id, item in zip(ids, requests_, strict=True):
            method, url = item.get("method"), item.get("url")
            if not isinstance(method, str) or not isinstance(url, str) or url.startswith(("http:", "https:")):
                return graph_error(400, "BadRequest", f"Invalid method or url in batch request {request_id}.")
            headers = {str(k): str(v) for k, v in (item.get("headers") or {}).items()}
            payload = b""
            if "body" in item:
                if not any(k.lower() == "content-type" for k in headers):
                    return graph_error(400, "BadRequest", f"Content-Type header is required for batch request "
                                                          f"{request_id}, which has a body.")
                raw = item["body"]
                payload = raw.encode("utf-8") if isinstance(raw, str) else json.dumps(raw).encode("utf-8")
            parts = urlsplit(url)
            path = parts.path.lstrip("/")
            if path.lower().startswith("v1.0/"):
                path = path[5:]
            query = MultiDict(parse_qsl(parts.query, keep_blank_values=True))
            item_call = Call(method.upper(), path, query, headers, payload, call.base_url, in_batch=True)
            items.append((request_id, item_call))

        def run(item: tuple[str, Call]) -> dict[str, Any]:
            request_id, item_call = item
            result = self.handle(item_call, authorization)
            headers = dict(result.headers)
            entry: dict[str, Any] = {"id": request_id, "status": result.status}
            if result.body is not None:
                headers["Content-Type"] = "application/json"
                entry["body"] = result.body
            entry["headers"] = headers
            return entry

        # Up to 4 items at a time, each one Graph request on its own (knobs, per-mailbox limit,
        # throttling, log entry); the responses keep the order of the requests.
        if len(items) <= 1:
            responses = [run(item) for item in items]
        else:
            with ThreadPoolExecutor(max_workers=min(BATCH_ITEMS_IN_PARALLEL, len(items)),
                                    thread_name_prefix="m365sim-batch") as pool:
                responses = list(pool.map(run, items))
        return GraphResult(200, {"responses": responses})
