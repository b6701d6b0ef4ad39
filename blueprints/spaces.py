"""The spaces API: import, search, one space, and browsing buildings → floors → spaces.

Thin HTTP triggers over `shared.spaces.SpaceDirectory`; every rule lives there. It never
builds error JSON (blueprints/http.py maps domain errors) and never writes a link.
"""

from __future__ import annotations

from typing import Any

import azure.functions as func

from blueprints.http import ApiCall, admin_api
from shared.context import get_context
from shared.errors import Invalid
from shared.imports import space_rows_from_csv
from shared.spaces import SpaceDirectory

bp = func.Blueprint()

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


def directory() -> SpaceDirectory:
    """The process's directory, built once by the composition root (shared/context.py)."""
    return get_context().spaces


@bp.function_name("spaces_import")
@bp.route(route="spaces/import", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@admin_api(body_types=("application/json", "text/csv"))
def import_spaces(call: ApiCall) -> dict[str, Any]:
    content_type = (call.request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type == "text/csv":
        rows: list[Any] = space_rows_from_csv(call.request.get_body() or b"")
    else:
        spaces = call.json().get("spaces")
        if not isinstance(spaces, list):
            raise Invalid('send {"spaces": [...]}: a list of spaces, or a CSV with the header '
                          "id,building_id,building_name,floor,number,name,type,capacity")
        rows = spaces
    return directory().import_spaces(rows, actor=call.principal.name)


@bp.function_name("spaces_search")
@bp.route(route="spaces", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@admin_api
def search_spaces(call: ApiCall) -> dict[str, Any]:
    return directory().search(
        call.query("q"),
        call.query_int("page_size", DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE),
        call.query("continuation_token"),
    )


@bp.function_name("spaces_get")
@bp.route(route="spaces/{space_id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@admin_api
def get_space(call: ApiCall) -> dict[str, Any]:
    return directory().get(call.route("space_id")).to_api()


@bp.function_name("spaces_buildings")
@bp.route(route="buildings", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@admin_api
def list_buildings(call: ApiCall) -> dict[str, Any]:
    return {"items": directory().buildings()}


@bp.function_name("spaces_floors")
@bp.route(route="buildings/{building_id}/floors", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@admin_api
def list_floors(call: ApiCall) -> dict[str, Any]:
    return {"items": directory().floors(call.route("building_id"))}


@bp.function_name("spaces_on_floor")
@bp.route(route="buildings/{building_id}/floors/{floor}/spaces", methods=["GET"],
          auth_level=func.AuthLevel.ANONYMOUS)
@admin_api
def list_spaces_on_floor(call: ApiCall) -> dict[str, Any]:
    return {"items": directory().spaces_on_floor(call.route("building_id"), call.route("floor"))}
