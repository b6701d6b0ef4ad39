"""The one place HTTP meets the domain.

Reads the signed-in principal (Easy Auth's `X-MS-CLIENT-PRINCIPAL`), checks the
administrator role and the anti-CSRF rule, parses JSON bodies, renders results,
and maps domain errors to `{"error": {"code", "message"}}` responses by class.
Handlers never build error JSON themselves and never see an exception escape.
"""

from __future__ import annotations

import base64
import binascii
import functools
import inspect
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func

from shared.context import get_settings
from shared.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    TooLarge,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
    UpstreamError,
)
from shared.graph import GraphError, IdentityUnavailable, TokenRefused
from shared.json_input import parse_json_object
from shared.models import Principal

log = logging.getLogger("rcc.http")

# Walked along each error's MRO: the first class found wins, so a subclass of
# Conflict is a 409 without a line of its own.
STATUS_BY_ERROR: dict[type[Exception], int] = {
    Invalid: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Gone: 410,
    TooLarge: 413,
    UnsupportedMediaType: 415,
    UpstreamError: 502,
    Unavailable: 503,
    GraphError: 502,
    TokenRefused: 409,
    IdentityUnavailable: 503,
    DomainError: 400,
}

# The claim types Entra ID tokens carry roles and a user's sign-in name in, as Easy Auth passes them.
ROLE_CLAIM = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
UPN_CLAIM = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"
STATE_CHANGING_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def json_response(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, ensure_ascii=False, default=str),
        status_code=status_code,
        mimetype="application/json",
        charset="utf-8",
        headers={**SECURITY_HEADERS, **(headers or {})},
    )


def error_response(error: Exception) -> func.HttpResponse:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            status = STATUS_BY_ERROR[cls]
            retry_after = getattr(error, "retry_after", None)
            headers = {"Retry-After": str(max(1, int(retry_after + 0.999)))} if retry_after is not None else None
            return json_response({"error": {"code": error.code, "message": error.message}}, status, headers)
    incident = uuid.uuid4().hex[:12]
    log.exception("unhandled error, incident %s", incident)
    return json_response(
        {"error": {"code": "internal", "message": f"Something went wrong on our side (incident {incident})."}},
        500,
    )


def read_principal(req: func.HttpRequest) -> Principal | None:
    """The principal Easy Auth (App Service or Static Web Apps format) put in the header.

    The platform strips copies a client sends; devhost does the same locally."""
    encoded = req.headers.get("x-ms-client-principal")
    if not encoded:
        return None
    try:
        data = json.loads(base64.b64decode(encoded, validate=False))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    if "claims" in data:  # App Service Authentication
        claims = [c for c in data.get("claims") or [] if isinstance(c, dict)]
        name_type = data.get("name_typ") or "name"
        role_types = {data.get("role_typ") or "roles", "roles", ROLE_CLAIM}

        def first(*types: str) -> str | None:
            return next((str(c.get("val")) for c in claims if c.get("typ") in types and c.get("val")), None)

        roles = {str(c.get("val")) for c in claims if c.get("typ") in role_types}
        name = first(name_type) or first("preferred_username", "name", "email", UPN_CLAIM)
        if name:
            return Principal(name=name, roles=frozenset(roles))
        # An application calling with its own (client credentials) token has no name: its id names it.
        app_id = first("appid", "azp")
        if app_id:
            return Principal(name=f"app:{app_id}", roles=frozenset(roles), is_application=True)
        return None
    if "userDetails" in data:  # Static Web Apps
        roles = {str(r) for r in data.get("userRoles") or []}
        return Principal(name=str(data["userDetails"]), roles=frozenset(roles))
    return None


@dataclass
class ApiCall:
    """What an admin handler gets: the request, the administrator, and parsers."""

    request: func.HttpRequest
    principal: Principal
    _json: Any = field(default=None, repr=False)

    def route(self, name: str) -> str:
        value = self.request.route_params.get(name)
        if value is None:
            raise Invalid(f"{name} is missing from the path")
        return value

    def query(self, name: str, default: str | None = None) -> str | None:
        value = self.request.params.get(name)
        return default if value is None or value == "" else value

    def query_int(self, name: str, default: int, *, minimum: int = 1, maximum: int = 1000) -> int:
        text = self.query(name)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            raise Invalid(f"{name} must be a whole number") from None
        if not minimum <= value <= maximum:
            raise Invalid(f"{name} must be between {minimum} and {maximum}")
        return value

    def json(self, *, required: bool = True) -> dict[str, Any]:
        if self._json is not None:
            return self._json
        body = self.request.get_body() or b""
        if not body:
            if required:
                raise Invalid("the request needs a JSON body")
            self._json = {}
            return self._json
        self._json = parse_json_object(body, what="the JSON body")
        return self._json


def _content_type(req: func.HttpRequest) -> str:
    return (req.headers.get("content-type") or "").split(";")[0].strip().lower()


def admin_api(
    handler: Callable[[ApiCall], Any] | None = None,
    *,
    body_types: tuple[str, ...] = ("application/json",),
    success_status: int = 200,
    also_for: tuple[str, ...] = (),
) -> Any:
    """Wrap an admin handler: principal and role, anti-CSRF, errors, rendering.

    The caller needs the administrator role — which only a signed-in person can hold, never an
    application's token, whatever roles its registration defines — or one of the app roles
    `also_for` (the workplace system's `bookings.read` / `bookings.write`). State-changing
    requests of signed-in people need `X-Requested-With` (a cross-site form cannot set a custom
    header without a CORS preflight, which we never grant; an application's bearer token is never
    sent by a browser on its own) and, when they carry a body, one of `body_types`. The handler
    returns a JSON-able value, an `HttpResponse`, or `(status, value)`.
    """

    def decorate(function: Callable[[ApiCall], Any]) -> Callable[[func.HttpRequest], func.HttpResponse]:
        def wrapper(req: func.HttpRequest) -> func.HttpResponse:
            try:
                principal = read_principal(req)
                if principal is None:
                    raise Unauthenticated("sign in as an administrator to use this")
                administrator = get_settings().admin_role in principal.roles and not principal.is_application
                if not administrator and not principal.roles & set(also_for):
                    raise Forbidden("this is for administrators only" if not also_for else
                                    f"this needs the administrator role or the app role {' or '.join(also_for)}")
                if req.method.upper() in STATE_CHANGING_METHODS:
                    if not principal.is_application and not req.headers.get("x-requested-with"):
                        raise Forbidden("state-changing requests need the X-Requested-With header")
                    if req.get_body() and _content_type(req) not in body_types:
                        raise UnsupportedMediaType(f"send the body as {' or '.join(body_types)}")
                result = function(ApiCall(req, principal))
                return render(result, success_status)
            except Exception as error:  # noqa: BLE001 - mapped by class, unknown ones logged with an id
                return error_response(error)

        wrapper.__name__ = function.__name__
        wrapper.__qualname__ = function.__qualname__
        wrapper.__doc__ = function.__doc__
        wrapper.__module__ = function.__module__
        # The Functions worker binds parameters by the signature: exactly `req`.
        wrapper.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter("req", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=func.HttpRequest)],
            return_annotation=func.HttpResponse,
        )
        return wrapper

    return decorate(handler) if handler is not None else decorate


def public_endpoint(function: Callable[[func.HttpRequest], Any]) -> Callable[[func.HttpRequest], func.HttpResponse]:
    """Wrap an endpoint reachable without sign-in (health, consent callback, webhooks):
    the same error mapping and rendering, no principal."""

    @functools.wraps(function)
    def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return render(function(req), 200)
        except Exception as error:  # noqa: BLE001
            return error_response(error)

    return wrapper


def render(result: Any, success_status: int = 200) -> func.HttpResponse:
    if isinstance(result, func.HttpResponse):
        return result
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], int):
        status, body = result
        if body is None:
            return func.HttpResponse(status_code=status, headers=SECURITY_HEADERS)
        return json_response(body, status)
    if result is None:
        return func.HttpResponse(status_code=204, headers=SECURITY_HEADERS)
    return json_response(result, success_status)


def redirect(location: str) -> func.HttpResponse:
    return func.HttpResponse(status_code=302, headers={**SECURITY_HEADERS, "Location": location})
