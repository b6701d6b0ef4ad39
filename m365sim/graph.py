"""Microsoft Graph v1.0 as the product uses it: organization, users, mailbox calendar/events,
places (rooms, room lists), subscriptions and JSON batching, with Graph's auth, permission,
throttling and error behaviour.

Owns request dispatch for everything under `/v1.0`. One call of `GraphApi.handle` is one Graph
request (a `$batch` item is one too), so knobs, limits and the request log apply per item as in
Graph (learn.microsoft.com/graph/json-batching, learn.microsoft.com/graph/throttling-limits).
It must never call out while holding the state lock, and never serve a request whose token it
did not verify.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import math
import random
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from werkzeug.datastructures import MultiDict

from m365sim import delivery
from m365sim.state import (
    CALENDAR_ROLES,
    MAX_CONCURRENT_PER_MAILBOX,
    ORGANIZATION_READ_ROLES,
    PLACE_READ_ROLES,
    SUBSCRIPTION_WRITE_WINDOW_SECONDS,
    USER_READ_ROLES,
    SimState,
    Subscription,
    Tenant,
    User,
)
from m365sim.tokens import InvalidToken, TokenClaims, TokenIssuer

# Outlook event subscriptions live at most 10,080 minutes (learn.microsoft.com/graph/api/resources/subscription).
MAX_SUBSCRIPTION_MINUTES = 10080
MAX_CLIENT_STATE_LENGTH = 128
MAX_BATCH_REQUESTS = 20
# Outlook runs up to 4 requests of one $batch at a time (learn.microsoft.com/graph/json-batching,
# learn.microsoft.com/graph/throttling-limits#outlook-service-limits).
BATCH_ITEMS_IN_PARALLEL = 4
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 999
VALID_CHANGE_TYPES = {"created", "updated", "deleted"}

_log = logging.getLogger("m365sim.graph")


@dataclass
class GraphResult:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def graph_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> GraphResult:
    inner = {"date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()), "request-id": str(uuid.uuid4()),
             "client-request-id": str(uuid.uuid4())}
    return GraphResult(status, {"error": {"code": code, "message": message, "innerError": inner}}, headers or {})


def _insufficient_privileges() -> GraphResult:
    return graph_error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def _access_denied() -> GraphResult:
    # Exchange application access policy / RBAC for Applications blocking this mailbox.
    return graph_error(403, "ErrorAccessDenied", "Access to OData is disabled.")


def _too_many_requests(retry_after: int, message: str) -> GraphResult:
    return graph_error(429, "TooManyRequests", message, {"Retry-After": str(max(1, retry_after))})


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


@dataclass
class Context:
    tenant: Tenant
    claims: TokenClaims

    def has_any(self, state: SimState, roles: frozenset[str]) -> bool:
        with state.lock:
            effective = self.claims.roles & self.tenant.effective_roles()
        return bool(effective & roles)


class GraphApi:
    def __init__(self, state: SimState, issuer: TokenIssuer, outbound_ca_bundle: str | None = None) -> None:
        self.state = state
        self.issuer = issuer
        self.outbound_ca_bundle = outbound_ca_bundle

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
            return _too_many_requests(retry_after, "Application is over its MailboxConcurrency limit.")
        if error_rate and random.random() < error_rate:
            return graph_error(503, "serviceNotAvailable", "Service is temporarily unavailable. Try again later.",
                               {"Retry-After": str(max(1, retry_after))})
        if lowered[:1] == ["subscriptions"] and call.method in ("POST", "PATCH", "DELETE"):
            limited = self._count_subscription_write(ctx.tenant)
            if limited is not None:
                return limited
        mailbox_key = self._mailbox_key(ctx.tenant, lowered, segments)
        if mailbox_key is not None and not self._enter_mailbox(ctx.tenant, mailbox_key):
            return _too_many_requests(1, "Application is over its MailboxConcurrency limit.")
        try:
            if latency_ms:
                time.sleep(latency_ms / 1000)
            return self._route(call, ctx, segments, lowered)
        finally:
            if mailbox_key is not None:
                self._leave_mailbox(ctx.tenant, mailbox_key)

    # -- limits --------------------------------------------------------------------------------

    def _count_subscription_write(self, tenant: Tenant) -> GraphResult | None:
        """Subscription writes per app per tenant in a 20 s sliding window (Graph: ~1,000)."""
        now = time.monotonic()
        with self.state.lock:
            if not tenant.knobs.enforce_limits:
                return None
            window = tenant.subscription_writes
            while window and window[0] <= now - SUBSCRIPTION_WRITE_WINDOW_SECONDS:
                window.popleft()
            if len(window) >= tenant.knobs.subscription_write_limit:
                oldest = window[0] if window else now
                wait = oldest + SUBSCRIPTION_WRITE_WINDOW_SECONDS - now
                return _too_many_requests(math.ceil(wait), "Too many subscription operations. Retry later.")
            window.append(now)
        return None

    def _mailbox_key(self, tenant: Tenant, lowered: list[str], segments: list[str]) -> str | None:
        """Requests to a mailbox's Outlook data (users/{id}/...) count against its concurrency limit."""
        if len(lowered) >= 3 and lowered[0] == "users":
            with self.state.lock:
                user = tenant.find_user(segments[1])
            return user.id if user else segments[1].lower()
        return None

    def _enter_mailbox(self, tenant: Tenant, key: str) -> bool:
        with self.state.lock:
            current = tenant.inflight.get(key, 0)
            if tenant.knobs.enforce_limits and current >= MAX_CONCURRENT_PER_MAILBOX:
                return False
            tenant.inflight[key] = current + 1
            return True

    def _leave_mailbox(self, tenant: Tenant, key: str) -> None:
        with self.state.lock:
            remaining = tenant.inflight.get(key, 1) - 1
            if remaining <= 0:
                tenant.inflight.pop(key, None)
            else:
                tenant.inflight[key] = remaining

    # -- routing -------------------------------------------------------------------------------

    def _route(self, call: Call, ctx: Context, segments: list[str], lowered: list[str]) -> GraphResult:
        method = call.method
        not_allowed = graph_error(405, "Request_BadRequest", "The specified HTTP method is not allowed for the "
                                  "request target.")
        if lowered == ["organization"]:
            return self._organization(ctx) if method == "GET" else not_allowed
        if lowered[:1] == ["users"]:
            if method != "GET":
                return not_allowed
            return self._users(call, ctx, segments, lowered)
        if lowered[:1] == ["places"]:
            if method != "GET":
                return not_allowed
            return self._places(call, ctx, segments, lowered)
        if lowered[:1] == ["subscriptions"]:
            return self._subscriptions(call, ctx, segments, lowered)
        first = segments[0] if segments else ""
        return graph_error(400, "BadRequest", f"Resource not found for the segment '{first}'.")

    # -- directory -----------------------------------------------------------------------------

    def _organization(self, ctx: Context) -> GraphResult:
        # Graph requires Organization.Read.All (or Directory.*) here; User.Read.All is not enough
        # (learn.microsoft.com/graph/api/organization-list).
        if not ctx.has_any(self.state, ORGANIZATION_READ_ROLES):
            return _insufficient_privileges()
        tenant = ctx.tenant
        domains = [
            {"capabilities": "Email, OfficeCommunicationsOnline", "isDefault": i == 0,
             "isInitial": d.lower().endswith(".onmicrosoft.com"), "name": d, "type": "Managed"}
            for i, d in enumerate(tenant.domains)
        ]
        org = {"id": tenant.id, "displayName": tenant.display_name, "tenantType": "AAD", "verifiedDomains": domains}
        return GraphResult(200, {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#organization",
                                 "value": [org]})

    def _users(self, call: Call, ctx: Context, segments: list[str], lowered: list[str]) -> GraphResult:
        if len(segments) == 1:
            if not ctx.has_any(self.state, USER_READ_ROLES):
                return _insufficient_privileges()
            with self.state.lock:
                users = [u.graph() for u in ctx.tenant.users if ctx.tenant.find_user(u.id) is not None]
            return self._page(call, users, "users")
        key = segments[1]
        if len(segments) == 2:
            if not ctx.has_any(self.state, USER_READ_ROLES):
                return _insufficient_privileges()
            with self.state.lock:
                user = ctx.tenant.find_user(key)
            if user is None:
                return graph_error(404, "Request_ResourceNotFound",
                                   f"Resource '{key}' does not exist or one of its queried reference-property "
                                   "objects are not present.")
            return GraphResult(200, {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
                                     **_select(user.graph(), call.query)})
        rest = lowered[2:]
        if rest not in (["calendar"], ["events"], ["calendar", "events"], ["calendarview"],
                        ["calendar", "calendarview"]):
            return graph_error(400, "BadRequest", f"Resource not found for the segment '{segments[2]}'.")
        if not ctx.has_any(self.state, CALENDAR_ROLES):
            return _insufficient_privileges()
        user = self._mailbox(ctx.tenant, key)
        if isinstance(user, GraphResult):
            return user
        if rest == ["calendar"]:
            return GraphResult(200, {
                "@odata.context": f"https://graph.microsoft.com/v1.0/$metadata#users('{user.id}')/calendar/$entity",
                "id": base64.urlsafe_b64encode(f"calendar:{user.id}".encode()).decode("ascii"),
                "name": "Calendar", "color": "auto", "isDefaultCalendar": True, "canEdit": True, "canShare": True,
                "canViewPrivateItems": True, "owner": {"name": user.display_name, "address": user.mail},
            })
        return self._page(call, [], "/".join(segments))

    def _mailbox(self, tenant: Tenant, key: str) -> User | GraphResult:
        with self.state.lock:
            user = tenant.find_user(key)
            denied = user is not None and tenant.is_denied(user)
        if user is None:
            return graph_error(404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")
        if denied:
            return _access_denied()
        return user

    # -- places --------------------------------------------------------------------------------

    def _places(self, call: Call, ctx: Context, segments: list[str], lowered: list[str]) -> GraphResult:
        if not ctx.has_any(self.state, PLACE_READ_ROLES):
            return _insufficient_privileges()
        tenant = ctx.tenant
        if lowered == ["places", "microsoft.graph.room"]:
            # Rooms flagged hiddenFromPlaces emulate Graph's known partial /places results.
            with self.state.lock:
                rooms = [r.graph() for r in tenant.rooms if not r.hidden_from_places]
            return self._page(call, rooms, "places/microsoft.graph.room")
        if lowered == ["places", "microsoft.graph.roomlist"]:
            with self.state.lock:
                lists = [r.graph() for r in tenant.room_lists]
            return self._page(call, lists, "places/microsoft.graph.roomlist")
        if len(lowered) == 4 and lowered[2:] == ["microsoft.graph.roomlist", "rooms"]:
            wanted = segments[1].lower()
            with self.state.lock:
                room_list = next((r for r in tenant.room_lists if wanted in (r.email.lower(), r.id)), None)
                rooms = [r.graph() for r in tenant.rooms
                         if room_list is not None and (r.room_list or "").lower() == room_list.email.lower()]
            if room_list is None:
                return graph_error(404, "ErrorInvalidUser", f"The requested user '{segments[1]}' is invalid.")
            return self._page(call, rooms, "/".join(segments))
        if len(lowered) == 2:
            wanted = segments[1].lower()
            with self.state.lock:
                place = next((r.graph() for r in tenant.rooms if wanted in (r.email.lower(), r.id)), None) or next(
                    (r.graph() for r in tenant.room_lists if wanted in (r.email.lower(), r.id)), None)
            if place is None:
                return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            return GraphResult(200, {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#places/$entity",
                                     **_select(place, call.query)})
        return graph_error(400, "BadRequest", "Unsupported places request.")

    # -- paging --------------------------------------------------------------------------------

    def _page(self, call: Call, items: list[dict[str, Any]], path: str) -> GraphResult:
        top_text = call.query.get("$top")
        top = DEFAULT_PAGE_SIZE
        if top_text is not None:
            if not top_text.isdigit() or int(top_text) < 1:
                return graph_error(400, "BadRequest", f"Invalid value '{top_text}' for $top query option.")
            top = min(int(top_text), MAX_PAGE_SIZE)
        offset = 0
        skiptoken = call.query.get("$skiptoken")
        if skiptoken is not None:
            try:
                offset = int(base64.urlsafe_b64decode(skiptoken.encode("ascii")).decode("ascii").removeprefix("o:"))
            except (ValueError, UnicodeDecodeError):
                return graph_error(400, "BadRequest", "The $skiptoken is invalid.")
        page = [_select(item, call.query) for item in items[offset: offset + top]]
        body: dict[str, Any] = {"@odata.context": f"https://graph.microsoft.com/v1.0/$metadata#{path}", "value": page}
        if offset + top < len(items):
            params = [(k, v) for k, v in call.query.items(multi=True) if k != "$skiptoken"]
            token = base64.urlsafe_b64encode(f"o:{offset + top}".encode("ascii")).decode("ascii")
            params.append(("$skiptoken", token))
            body["@odata.nextLink"] = f"{call.base_url}/{path}?{urlencode(params)}"
        return GraphResult(200, body)

    # -- subscriptions -------------------------------------------------------------------------

    def _subscriptions(self, call: Call, ctx: Context, segments: list[str], lowered: list[str]) -> GraphResult:
        method = call.method
        if len(segments) == 1:
            if method == "POST":
                return self._create_subscription(call, ctx)
            if method == "GET":
                with self.state.lock:
                    subs = [s for s in self.state.subscriptions.values()
                            if s.tenant_id == ctx.tenant.id and s.application_id == ctx.claims.app_id]
                live = [s.graph(include_client_state=False) for s in subs
                        if self.state.live_subscription(s.id) is not None]
                return self._page(call, live, "subscriptions")
            return graph_error(405, "BadRequest", "Method not allowed.")
        subscription = self.state.live_subscription(segments[1])
        if subscription is None or subscription.tenant_id != ctx.tenant.id:
            return graph_error(404, "ResourceNotFound",
                               f"The object was not found. subscription '{segments[1]}' does not exist.")
        if len(segments) == 3 and lowered[2] == "reauthorize" and method == "POST":
            if not ctx.has_any(self.state, CALENDAR_ROLES):
                return _insufficient_privileges()
            return GraphResult(204)
        if len(segments) != 2:
            return graph_error(400, "BadRequest", f"Resource not found for the segment '{segments[2]}'.")
        if method == "GET":
            return GraphResult(200, {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/"
                                     "$entity", **subscription.graph(include_client_state=False)})
        if not ctx.has_any(self.state, CALENDAR_ROLES):
            return _insufficient_privileges()
        if method == "DELETE":
            with self.state.lock:
                self.state.subscriptions.pop(subscription.id, None)
            return GraphResult(204)
        if method == "PATCH":
            body = _json_body(call)
            if not isinstance(body, dict):
                return graph_error(400, "BadRequest", "Unable to read JSON request payload.")
            unsupported = set(body) - {"expirationDateTime", "notificationUrl", "@odata.type"}
            if unsupported:
                names = ", ".join(sorted(unsupported))
                return graph_error(400, "InvalidRequest", f"Properties cannot be updated: {names}.")
            expiration = _check_expiration(body.get("expirationDateTime"))
            if isinstance(expiration, GraphResult):
                return expiration
            with self.state.lock:
                if subscription.id not in self.state.subscriptions:
                    return graph_error(404, "ResourceNotFound", "The object was not found.")
                subscription.expiration = expiration
                answer = subscription.graph(include_client_state=False)
            return GraphResult(200, {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/"
                                     "$entity", **answer})
        return graph_error(405, "BadRequest", "Method not allowed.")

    def _create_subscription(self, call: Call, ctx: Context) -> GraphResult:
        body = _json_body(call)
        if not isinstance(body, dict):
            return graph_error(400, "BadRequest", "Unable to read JSON request payload.")
        change_type = body.get("changeType")
        if not isinstance(change_type, str) or not change_type or not set(change_type.split(",")) <= VALID_CHANGE_TYPES:
            return graph_error(400, "InvalidRequest", "changeType must be a comma-separated list of created, updated, "
                                                      "deleted.")
        notification_url = body.get("notificationUrl")
        lifecycle_url = body.get("lifecycleNotificationUrl")
        for name, url in (("notificationUrl", notification_url), ("lifecycleNotificationUrl", lifecycle_url)):
            if url is None and name == "lifecycleNotificationUrl":
                continue
            if not isinstance(url, str) or not delivery.is_allowed_notification_url(url):
                # Graph accepts only https; the simulator also accepts http on loopback.
                return graph_error(400, "InvalidRequest", f"The {name} must be an https URL.")
        client_state = body.get("clientState")
        if client_state is not None and (
            not isinstance(client_state, str) or len(client_state) > MAX_CLIENT_STATE_LENGTH
        ):
            return graph_error(400, "InvalidRequest", "clientState must be a string of at most 128 characters.")
        expiration = _check_expiration(body.get("expirationDateTime"))
        if isinstance(expiration, GraphResult):
            return expiration
        resource = body.get("resource")
        parts = resource.strip("/").split("/") if isinstance(resource, str) else []
        if len(parts) != 3 or parts[0].lower() != "users" or parts[2].lower() != "events" or not parts[1]:
            return graph_error(400, "InvalidRequest",
                               f"Resource '{resource}' is not supported. Use /users/{{id}}/events.")
        if not ctx.has_any(self.state, CALENDAR_ROLES):
            return graph_error(403, "ExtensionError", "Operation: Create; Exception: [Status Code: Forbidden; Reason: "
                                                      "Insufficient privileges to complete the operation.]")
        user = self._mailbox(ctx.tenant, parts[1])
        if isinstance(user, GraphResult):
            return user
        for url in (notification_url, lifecycle_url):
            if url is None:
                continue
            failure = delivery.validation_handshake(url, self.outbound_ca_bundle)
            if failure is not None:
                return graph_error(400, "ValidationError", "Subscription validation request failed. Notification "
                                   f"endpoint must respond with 200 OK to validation request. ({failure})")
        subscription = Subscription(
            id=str(uuid.uuid4()),
            tenant_id=ctx.tenant.id,
            application_id=ctx.claims.app_id,
            creator_id=ctx.tenant.service_principal_id,
            resource=resource,
            mailbox_user_id=user.id,
            change_type=change_type,
            notification_url=notification_url,
            lifecycle_notification_url=lifecycle_url,
            expiration=expiration,
            client_state=client_state,
        )
        with self.state.lock:
            self.state.subscriptions[subscription.id] = subscription
        return GraphResult(201, {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
                                 **subscription.graph(include_client_state=True)})

    # -- batching ------------------------------------------------------------------------------

    def _batch(self, call: Call, authorization: str) -> GraphResult:
        if call.method != "POST":
            return graph_error(405, "BadRequest", "Method not allowed.")
        body = _json_body(call)
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


def _json_body(call: Call) -> Any:
    try:
        return json.loads(call.body.decode("utf-8")) if call.body else None
    except (ValueError, UnicodeDecodeError):
        return None


def _check_expiration(value: Any) -> float | GraphResult:
    expiration = parse_graph_time(value)
    if expiration is None:
        return graph_error(400, "InvalidRequest", "expirationDateTime is required and must be a DateTimeOffset.")
    now = time.time()
    if expiration <= now:
        return graph_error(400, "InvalidRequest", "Subscription expiration time must be in the future.")
    if expiration > now + MAX_SUBSCRIPTION_MINUTES * 60:
        return graph_error(400, "InvalidRequest", "Subscription expiration can only be 10080 minutes in the future.")
    return expiration


def _select(item: dict[str, Any], query: MultiDict) -> dict[str, Any]:
    select = query.get("$select")
    if not select:
        return item
    wanted = {s.strip().lower() for s in select.split(",")} | {"id", "@odata.type"}
    return {k: v for k, v in item.items() if k.lower() in wanted}

