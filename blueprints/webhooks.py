"""Graph's webhooks: change notifications and lifecycle notifications. No sign-in:
Graph calls them, so anyone can; what is not ours is dropped (`shared/notifications.py`).

Both answer Graph's validation request (`?validationToken=`) at once with 200,
text/plain and the decoded token; notifications are acknowledged with 202 once
queued. https://learn.microsoft.com/graph/change-notifications-delivery-webhooks
"""

from __future__ import annotations

import azure.functions as func

from blueprints.http import SECURITY_HEADERS, public_endpoint
from shared.context import get_context
from shared.errors import TooLarge
from shared.notifications import MAX_BODY_BYTES, check_validation_token

bp = func.Blueprint()
ANON = func.AuthLevel.ANONYMOUS


def _validation(req: func.HttpRequest) -> func.HttpResponse | None:
    token = req.params.get("validationToken")
    if token is None:
        return None
    # The host has URL-decoded the query already: echo the token as Graph sent it.
    return func.HttpResponse(check_validation_token(token), status_code=200, mimetype="text/plain",
                             charset="utf-8", headers=SECURITY_HEADERS)


def _body(req: func.HttpRequest) -> bytes:
    declared = req.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise TooLarge("the notification body is larger than 1 MiB")
    return req.get_body() or b""


@bp.function_name("notifications")
@bp.route(route="notifications", methods=["POST"], auth_level=ANON)
@public_endpoint
def notifications(req: func.HttpRequest) -> object:
    validation = _validation(req)
    if validation is not None:
        return validation
    get_context().notifications.receive_changes(_body(req))
    return 202, None


@bp.function_name("notifications_lifecycle")
@bp.route(route="notifications/lifecycle", methods=["POST"], auth_level=ANON)
@public_endpoint
def notifications_lifecycle(req: func.HttpRequest) -> object:
    validation = _validation(req)
    if validation is not None:
        return validation
    get_context().notifications.receive_lifecycle(_body(req))
    return 202, None
