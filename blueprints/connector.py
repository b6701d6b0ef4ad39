"""The connector timer and its page-facing status.

`connector_run` fires on `%CONNECT_SCHEDULE%` (default every 15 minutes) and runs
one connector pass; `GET /api/connector/status` serves the last run and the next.
Thin: the work is `shared/connector.py`.
"""

from __future__ import annotations

import logging

import azure.functions as func

from blueprints.http import ApiCall, admin_api
from shared.context import get_context

bp = func.Blueprint()
log = logging.getLogger("rcc.connector")


@bp.function_name("connector_run")
@bp.timer_trigger(arg_name="timer", schedule="%CONNECT_SCHEDULE%", run_on_startup=False)
def connector_run(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.info("connector run is past due; running now")
    get_context().connector.run()


@bp.function_name("connector_status")
@bp.route(route="connector/status", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@admin_api
def connector_status(call: ApiCall) -> object:
    return get_context().connector.status()
