"""Room calendars of an account: add, list, discover, link, unlink, remove, Connect Calendars."""

from __future__ import annotations

import azure.functions as func

from blueprints.http import ApiCall, admin_api
from shared.context import get_context

bp = func.Blueprint()
ANON = func.AuthLevel.ANONYMOUS


@bp.function_name("calendars_list")
@bp.route(route="accounts/{account_id}/calendars", methods=["GET"], auth_level=ANON)
@admin_api
def list_calendars(call: ApiCall) -> object:
    return get_context().calendars.list(
        call.route("account_id"),
        status=call.query("status"),
        linked=call.query("linked"),
        q=call.query("q"),
        page_size=call.query_int("page_size", 50, maximum=500),
        continuation_token=call.query("continuation_token"),
    )


@bp.function_name("calendars_add")
@bp.route(route="accounts/{account_id}/calendars", methods=["POST"], auth_level=ANON)
@admin_api(success_status=201)
def add_calendar(call: ApiCall) -> object:
    body = call.json()
    return get_context().calendars.add(call.route("account_id"), body.get("email"), body.get("space_id"),
                                       call.principal.name)


@bp.function_name("calendars_add_many")
@bp.route(route="accounts/{account_id}/calendars/bulk", methods=["POST"], auth_level=ANON)
@admin_api
def add_calendars(call: ApiCall) -> object:
    return get_context().calendars.add_many(call.route("account_id"), call.json().get("rooms"),
                                            call.principal.name)


@bp.function_name("calendars_connect")
@bp.route(route="accounts/{account_id}/calendars/connect", methods=["POST"], auth_level=ANON)
@admin_api
def connect_calendars(call: ApiCall) -> object:
    return get_context().calendars.queue_calendars_for_connection(call.route("account_id"), call.principal.name)


@bp.function_name("calendars_get")
@bp.route(route="accounts/{account_id}/calendars/{email}", methods=["GET"], auth_level=ANON)
@admin_api
def get_calendar(call: ApiCall) -> object:
    return get_context().calendars.get(call.route("account_id"), call.route("email"))


@bp.function_name("calendars_remove")
@bp.route(route="accounts/{account_id}/calendars/{email}", methods=["DELETE"], auth_level=ANON)
@admin_api
def remove_calendar(call: ApiCall) -> object:
    return get_context().calendars.remove(call.route("account_id"), call.route("email"), call.principal.name)


@bp.function_name("calendars_link")
@bp.route(route="accounts/{account_id}/calendars/{email}/space", methods=["PUT"], auth_level=ANON)
@admin_api
def link_calendar(call: ApiCall) -> object:
    return get_context().calendars.link(call.route("account_id"), call.route("email"),
                                        call.json().get("space_id"), call.principal.name)


@bp.function_name("calendars_unlink")
@bp.route(route="accounts/{account_id}/calendars/{email}/space", methods=["DELETE"], auth_level=ANON)
@admin_api
def unlink_calendar(call: ApiCall) -> object:
    return get_context().calendars.unlink(call.route("account_id"), call.route("email"), call.principal.name)


@bp.function_name("rooms_discover")
@bp.route(route="accounts/{account_id}/rooms", methods=["GET"], auth_level=ANON)
@admin_api
def discover_rooms(call: ApiCall) -> object:
    return get_context().discovery.discover(call.route("account_id"))


@bp.function_name("audit_list")
@bp.route(route="audit", methods=["GET"], auth_level=ANON)
@admin_api
def list_audit(call: ApiCall) -> object:
    return get_context().audit.page(page_size=call.query_int("page_size", 50, maximum=200),
                                    continuation_token=call.query("continuation_token"),
                                    actor=call.query("actor"), action=call.query("action"))
