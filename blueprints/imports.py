"""Bulk add by CSV: the template, the upload, the blob-triggered import, its records and report, the export.

Thin triggers over `shared.imports.CalendarImports`: they read the request or the
blob's name, call one domain function and render the result. No rule lives here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import azure.functions as func

from blueprints.http import SECURITY_HEADERS, ApiCall, admin_api
from shared.context import get_context
from shared.errors import Invalid

log = logging.getLogger("rcc.imports")

bp = func.Blueprint()
ANON = func.AuthLevel.ANONYMOUS


def csv_download(file_name: str, content: bytes | Iterable[bytes]) -> func.HttpResponse:
    body = content if isinstance(content, bytes) else b"".join(content)
    return func.HttpResponse(
        body,
        status_code=200,
        headers={**SECURITY_HEADERS, "Content-Type": "text/csv; charset=utf-8",
                 "Content-Disposition": f'attachment; filename="{file_name}"'},
    )


def _bool_query(call: ApiCall, name: str) -> bool:
    value = (call.query(name, "false") or "false").lower()
    if value not in ("true", "false"):
        raise Invalid(f"{name} must be true or false")
    return value == "true"


@bp.function_name("calendars_template")
@bp.route(route="calendars/template.csv", methods=["GET"], auth_level=ANON)
@admin_api
def template(call: ApiCall) -> object:
    return csv_download("csvTemplate.csv", get_context().imports.template())


@bp.function_name("calendars_export")
@bp.route(route="accounts/{account_id}/calendars.csv", methods=["GET"], auth_level=ANON)
@admin_api
def export_calendars(call: ApiCall) -> object:
    return csv_download(*get_context().imports.export(call.route("account_id")))


@bp.function_name("imports_upload")
@bp.route(route="accounts/{account_id}/imports", methods=["POST"], auth_level=ANON)
@admin_api(body_types=("text/csv", "application/vnd.ms-excel", "application/octet-stream"), success_status=202)
def upload(call: ApiCall) -> object:
    return get_context().imports.upload(
        call.route("account_id"), call.request.get_body() or b"",
        validate_only=_bool_query(call, "validate_only"), connect=_bool_query(call, "connect"),
        actor=call.principal.name,
    )


@bp.function_name("imports_list")
@bp.route(route="accounts/{account_id}/imports", methods=["GET"], auth_level=ANON)
@admin_api
def list_imports(call: ApiCall) -> object:
    return get_context().imports.list(call.route("account_id"))


@bp.function_name("imports_get")
@bp.route(route="accounts/{account_id}/imports/{import_id}", methods=["GET"], auth_level=ANON)
@admin_api
def get_import(call: ApiCall) -> object:
    return get_context().imports.get(call.route("account_id"), call.route("import_id"))


@bp.function_name("imports_report")
@bp.route(route="accounts/{account_id}/imports/{import_id}/report.csv", methods=["GET"], auth_level=ANON)
@admin_api
def import_report(call: ApiCall) -> object:
    return csv_download(*get_context().imports.report(call.route("account_id"), call.route("import_id")))


@bp.function_name("import_calendar_csv")
@bp.blob_trigger(arg_name="upload", path="%UPLOADS_CONTAINER%/{name}", connection="DataStorage",
                 # Flex Consumption runs blob triggers only from Event Grid events.
                 # https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-blob-trigger#blob-trigger-source
                 source=func.BlobSource.EVENT_GRID)
def import_calendar_csv(upload: func.InputStream) -> None:
    """The blob is read by name with the Storage SDK in ranges (streamed), not through `upload`:
    file problems become the import's report; storage failures raise, so the host retries."""
    context = get_context()
    container, _, blob_name = (upload.name or "").partition("/")
    if container != context.settings.uploads_container or not blob_name:
        raise ValueError(f"the blob {upload.name!r} is not in {context.settings.uploads_container}/")
    record = context.imports.process_blob(blob_name)
    log.info("import of %s: %s %s", upload.name, record.get("status"), record.get("counts") or record.get("error"))
