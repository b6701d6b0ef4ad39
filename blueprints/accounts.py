"""Calendar accounts: add, list, show, re-authorize, remove; and the admin-consent callback."""

from __future__ import annotations

import azure.functions as func

from blueprints.http import ApiCall, admin_api, public_endpoint, read_principal, redirect
from shared.context import get_context

bp = func.Blueprint()


@bp.function_name("accounts_list")
@bp.route(route="accounts", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@admin_api
def list_accounts(call: ApiCall) -> object:
    return {"items": get_context().accounts.list()}


@bp.function_name("accounts_add")
@bp.route(route="accounts", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@admin_api(success_status=201)
def add_account(call: ApiCall) -> object:
    return get_context().accounts.add(call.json().get("tenant_id"), call.principal)


@bp.function_name("accounts_get")
@bp.route(route="accounts/{account_id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@admin_api
def get_account(call: ApiCall) -> object:
    return get_context().accounts.get(call.route("account_id"))


@bp.function_name("accounts_remove")
@bp.route(route="accounts/{account_id}", methods=["DELETE"], auth_level=func.AuthLevel.ANONYMOUS)
@admin_api
def remove_account(call: ApiCall) -> object:
    return get_context().accounts.remove(call.route("account_id"), call.principal)


@bp.function_name("accounts_reauthorize")
@bp.route(route="accounts/{account_id}/reauthorize", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@admin_api
def reauthorize_account(call: ApiCall) -> object:
    return get_context().accounts.reauthorize(call.route("account_id"), call.principal)


@bp.function_name("accounts_check")
@bp.route(route="accounts/{account_id}/check", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@admin_api
def check_account(call: ApiCall) -> object:
    return get_context().accounts.check(call.route("account_id"), call.principal)


@bp.function_name("consent_callback")
@bp.route(route="consent/callback", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@public_endpoint
def consent_callback(req: func.HttpRequest) -> func.HttpResponse:
    """Microsoft's redirect after admin consent. Reachable without the admin role;
    protected by `state`. Always answers with a redirect to our own admin page."""
    outcome = get_context().consent.complete(dict(req.params), read_principal(req))
    return redirect(outcome.redirect_url)
