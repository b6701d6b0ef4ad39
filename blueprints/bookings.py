"""The bookings API: a space's bookings, a calendar's, and the change feed.

Callers are administrators and the workplace system's service principals with the app role
`bookings.read`. Thin: the work is `shared/bookings`.
"""

from __future__ import annotations

import azure.functions as func

from blueprints.http import ApiCall, admin_api
from shared.context import get_context

bp = func.Blueprint()
ANON = func.AuthLevel.ANONYMOUS
READ = ("bookings.read",)


@bp.function_name("space_bookings")
@bp.route(route="spaces/{space_id}/bookings", methods=["GET"], auth_level=ANON)
@admin_api(also_for=READ)
def space_bookings(call: ApiCall) -> object:
    return get_context().bookings.for_space(call.route("space_id"), call.query("start"), call.query("end"))


@bp.function_name("calendar_bookings")
@bp.route(route="accounts/{account_id}/calendars/{email}/bookings", methods=["GET"], auth_level=ANON)
@admin_api
def calendar_bookings(call: ApiCall) -> object:
    return get_context().bookings.for_calendar(call.route("account_id"), call.route("email"), call.query("start"),
                                               call.query("end"))


@bp.function_name("booking_changes")
@bp.route(route="bookings/changes", methods=["GET"], auth_level=ANON)
@admin_api(also_for=READ)
def booking_changes(call: ApiCall) -> object:
    return get_context().bookings.changes(call.query("cursor"), call.query_int("limit", 100, maximum=500))
