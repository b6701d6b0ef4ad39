"""The bookings API: a space's bookings, a calendar's, the change feed, and booking a space.

Callers are administrators and the workplace system's service principals with the app roles
`bookings.read` (reading) and `bookings.write` (booking, changing, cancelling). Thin: the work is
`shared/bookings`.
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


# --- writing (the workplace system, with the app role bookings.write) --------------------------

WRITE = ("bookings.write",)


@bp.function_name("space_bookings_create")
@bp.route(route="spaces/{space_id}/bookings", methods=["POST"], auth_level=ANON)
@admin_api(also_for=WRITE, success_status=201)
def create_booking(call: ApiCall) -> object:
    return get_context().writes.create(call.route("space_id"), call.request.headers.get("idempotency-key"),
                                       call.json())


@bp.function_name("space_bookings_change")
@bp.route(route="spaces/{space_id}/bookings/{booking_id}", methods=["PATCH"], auth_level=ANON)
@admin_api(also_for=WRITE)
def change_booking(call: ApiCall) -> object:
    return get_context().writes.change(call.route("space_id"), call.route("booking_id"), call.json())


@bp.function_name("space_bookings_cancel")
@bp.route(route="spaces/{space_id}/bookings/{booking_id}", methods=["DELETE"], auth_level=ANON)
@admin_api(also_for=WRITE)
def cancel_booking(call: ApiCall) -> object:
    return get_context().writes.cancel(call.route("space_id"), call.route("booking_id"))


# --- the page's connection test (administrators) -------------------------------------------------


@bp.function_name("calendar_test_booking")
@bp.route(route="accounts/{account_id}/calendars/{email}/test-booking", methods=["POST"], auth_level=ANON)
@admin_api(success_status=201)
def test_booking(call: ApiCall) -> object:
    return get_context().writes.test_booking(call.route("account_id"), call.route("email"), call.principal.name)


@bp.function_name("calendar_booking_cancel")
@bp.route(route="accounts/{account_id}/calendars/{email}/bookings/{booking_id}", methods=["DELETE"], auth_level=ANON)
@admin_api
def cancel_calendar_booking(call: ApiCall) -> object:
    return get_context().writes.cancel_on_calendar(call.route("account_id"), call.route("email"),
                                                   call.route("booking_id"))
