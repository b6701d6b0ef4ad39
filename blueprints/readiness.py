"""Tenant readiness: the account's findings, a re-check, and the two PowerShell scripts as downloads.

Thin: the work is `shared/readiness`. Scripts are `text/plain` attachments with a `.ps1` name.
"""

from __future__ import annotations

import azure.functions as func

from blueprints.http import SECURITY_HEADERS, ApiCall, admin_api
from shared.context import get_context

bp = func.Blueprint()
ANON = func.AuthLevel.ANONYMOUS


def script_download(file_name: str, text: str) -> func.HttpResponse:
    return func.HttpResponse(text.encode("utf-8"), status_code=200, headers={
        **SECURITY_HEADERS, "Content-Type": "text/plain; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{file_name}"'})


@bp.function_name("readiness_get")
@bp.route(route="accounts/{account_id}/readiness", methods=["GET"], auth_level=ANON)
@admin_api
def readiness(call: ApiCall) -> object:
    return get_context().readiness.report(call.route("account_id"))


@bp.function_name("readiness_check")
@bp.route(route="accounts/{account_id}/readiness/check", methods=["POST"], auth_level=ANON)
@admin_api
def readiness_check(call: ApiCall) -> object:
    return get_context().readiness.check(call.route("account_id"), call.json(required=False).get("rooms"))


@bp.function_name("readiness_rbac_script")
@bp.route(route="accounts/{account_id}/readiness/rbac.ps1", methods=["GET"], auth_level=ANON)
@admin_api
def rbac_script(call: ApiCall) -> object:
    return script_download(*get_context().readiness.rbac(call.route("account_id")))


@bp.function_name("readiness_room_settings_script")
@bp.route(route="accounts/{account_id}/readiness/room-settings.ps1", methods=["GET"], auth_level=ANON)
@admin_api
def room_settings_script(call: ApiCall) -> object:
    return script_download(*get_context().readiness.room_settings(call.route("account_id"), call.query("rooms"),
                                                                  call.query("external")))
