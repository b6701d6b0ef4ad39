"""GET /api/health: storage reachable, tables present, version. No sign-in needed."""

from __future__ import annotations

import azure.functions as func

import shared
from blueprints.http import json_response, public_endpoint
from shared.context import get_context

bp = func.Blueprint()


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@public_endpoint
def health(req: func.HttpRequest) -> func.HttpResponse:
    try:
        missing = get_context().storage.missing_tables()
        storage = {"ok": not missing, "missing_tables": missing}
    except Exception as error:  # noqa: BLE001 - health reports, it does not raise
        storage = {"ok": False, "error": type(error).__name__}
    status = 200 if storage["ok"] else 503
    return json_response({"status": "ok" if storage["ok"] else "degraded", "version": shared.__version__,
                          "storage": storage}, status)
