"""GET /api/openapi.json: the OpenAPI 3 contract of every HTTP route.

Owns the document; a test fails when a route exists that the document lacks, or
the reverse, and a property-based run (schemathesis) checks responses against it.
"""

from __future__ import annotations

from typing import Any

import azure.functions as func

import shared
from blueprints.http import json_response, public_endpoint
from shared.readiness import MAX_ROOMS_PER_CHECK

bp = func.Blueprint()

ADMIN_ERRORS = ("400", "401", "403", "404", "409", "413", "415")


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "nullable": True, **extra}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _page(item: str, **extra: Any) -> dict[str, Any]:
    return {"type": "object", "required": ["items"], "properties": {
        "items": {"type": "array", "items": _ref(item)}, "continuation_token": _nullable("string"), **extra}}


STRING = {"type": "string"}


def _items(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["items"], "properties": {
        "items": {"type": "array", "items": {"type": "object", "properties": properties}}}}
TIME = _nullable("string")
CONNECTOR_RUN = {"type": "object", "required": ["state", "started_at"], "properties": {
    "run_id": _nullable("string"), "state": {"type": "string", "enum": ["running", "finished", "interrupted"]},
    "started_at": TIME, "finished_at": TIME, "last_seen_at": TIME,
    **{name: {"type": "integer"} for name in ("claimed", "connected", "renewed", "failed", "throttled",
                                              "left_for_next_run")}}}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": STRING, "message": STRING}}}},
    "Capability": {"type": "object", "properties": {"name": STRING, "permission": STRING, "ok": {"type": "boolean"},
                                                    "detail": STRING}},
    "Account": {"type": "object", "required": ["id", "tenant_id", "status", "status_label"], "properties": {
        "id": STRING, "tenant_id": STRING, "tenant_name": STRING,
        "status": {"type": "string", "enum": ["pending_consent", "verified", "consent_failed", "needs_reauth"]},
        "status_label": STRING, "status_reason": _nullable("string"), "created_by": STRING, "created_at": STRING,
        "consented_by": _nullable("string"), "verified_at": TIME,
        "granted_permissions": {"type": "array", "items": STRING},
        "capabilities": {"type": "array", "items": _ref("Capability")},
        "missing_permissions": {"type": "array", "items": STRING}, "last_error": _nullable("string")}},
    "AccountWithConsent": {"type": "object", "required": ["account", "consent_url"], "properties": {
        "account": _ref("Account"), "consent_url": STRING}},
    "SpaceRef": {"type": "object", "nullable": True, "properties": {"id": STRING, "number": _nullable("string"),
                                                                    "name": _nullable("string")}},
    "Calendar": {"type": "object", "required": ["email", "status"], "properties": {
        "email": STRING, "account_id": STRING,
        "status": {"type": "string", "enum": ["added", "queued", "connecting", "connected", "failed"]},
        "status_reason": _nullable("string"), "waiting_until": TIME,
        "failure_kind": _nullable("string", enum=["consent", "permission", "mailbox", "policy", "transient", None]),
        "resync_needed": {"type": "boolean"}, "space": _ref("SpaceRef"), "display_name": _nullable("string"),
        "subscription_expires_at": TIME, "attempts": {"type": "integer"}, "next_attempt_at": TIME,
        "last_error": _nullable("string"), "last_notification_at": TIME, "last_activity_at": TIME,
        "added_at": TIME, "added_by": _nullable("string"), "sync": {"$ref": "#/components/schemas/SyncSummary"}}},
    "CalendarPage": {"type": "object", "required": ["items", "counts"], "properties": {
        "items": {"type": "array", "items": _ref("Calendar")}, "continuation_token": _nullable("string"),
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}}}},
    "Space": {"type": "object", "required": ["id", "number", "name"], "properties": {
        "id": STRING, "building_id": STRING, "building_name": STRING, "floor": STRING, "number": STRING,
        "name": STRING, "type": STRING, "capacity": {"type": "integer"},
        "linked": {"type": "object", "nullable": True, "properties": {"account_id": STRING, "email": STRING}}}},
    "Import": {"type": "object", "required": ["import_id", "status"], "properties": {
        "import_id": STRING, "account_id": STRING,
        "status": {"type": "string", "enum": ["pending", "running", "completed", "failed"]},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "rejected": {"type": "array", "items": {"type": "object"}}, "error": _nullable("string")}},
    "SyncSummary": {"type": "object", "nullable": True, "properties": {
        "last_synced_at": TIME, "bookings_in_window": {"type": "integer"}, "syncing": {"type": "boolean"},
        "window": {"type": "object", "nullable": True}, "last_error": _nullable("string"), "error_at": TIME,
        "next_bookings": {"type": "array", "items": {"type": "object"}}}},
    "Booking": {"type": "object", "required": ["id", "start", "end", "subject", "is_private"], "properties": {
        "id": STRING, "calendar": {"type": "object", "properties": {"account_id": STRING, "email": STRING}},
        "space_id": _nullable("string"), "start": STRING, "end": STRING, "time_zone": STRING,
        "is_all_day": {"type": "boolean"}, "subject": _nullable("string"), "is_private": {"type": "boolean"},
        "organizer": {"type": "object", "properties": {"name": STRING, "email": STRING}}, "show_as": STRING,
        "is_cancelled": {"type": "boolean"}, "type": STRING, "series_master_id": _nullable("string"),
        "ical_uid": STRING, "change_key": STRING, "created_by_connector": {"type": "boolean"},
        "seen_by_sync": {"type": "boolean"}}},
    "BookingRange": {"type": "object", "required": ["items", "start", "end"], "properties": {
        "items": {"type": "array", "items": {"$ref": "#/components/schemas/Booking"}}, "start": STRING,
        "end": STRING, "synced_at": TIME, "window": {"type": "object", "nullable": True},
        "sync": {"$ref": "#/components/schemas/SyncSummary"}}},
    "BookingChanges": {"type": "object", "required": ["items", "cursor", "more"], "properties": {
        "items": {"type": "array", "items": {"type": "object", "properties": {
            "kind": {"type": "string", "enum": ["upserted", "removed", "space_reset", "calendar_reset"]}, "at": STRING,
            "space_id": _nullable("string"), "booking_id": _nullable("string"), "reason": _nullable("string"),
            "calendar": {"type": "object"}, "booking": {"type": "object", "nullable": True}}}},
        "cursor": STRING, "more": {"type": "boolean"}}},
    "ConnectorStatus": {"type": "object", "required": ["last_run", "interrupted_run", "running", "next_run_at"],
                        "properties": {
        "last_run": {**CONNECTOR_RUN, "nullable": True}, "interrupted_run": {**CONNECTOR_RUN, "nullable": True},
        "running": {"type": "array", "items": CONNECTOR_RUN}, "next_run_at": TIME}},
    "Readiness": {"type": "object", "required": ["access", "findings", "counts"], "properties": {
        "account_id": STRING, "access": {"type": "string", "enum": ["tenant_wide", "rooms_only", "unknown"]},
        "access_detail": STRING, "checked_at": TIME, "rooms_checked": {"type": "integer"},
        "rooms_with_findings": {"type": "integer"},
        "findings": {"type": "array", "items": {"type": "object", "properties": {
            "kind": STRING, "severity": STRING, "reason": STRING, "fix": STRING, "room": _nullable("string")}}},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
        "scripts": {"type": "object", "properties": {"rbac": STRING, "room_settings": STRING}}}},
    "AuditEntry": {"type": "object", "properties": {"at": STRING, "actor": STRING, "action": STRING,
                                                    "target": STRING, "outcome": STRING, "detail": {"type": "object"},
                                                    "count": {"type": "integer", "minimum": 1},
                                                    "first_at": STRING}},
}

ACCOUNT_ID = {"name": "account_id", "in": "path", "required": True,
              "schema": {"type": "string", "maxLength": 64}}
EMAIL = {"name": "email", "in": "path", "required": True, "schema": {"type": "string", "minLength": 1,
                                                                   "maxLength": 320}}
PAGE_SIZE = {"name": "page_size", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}}
TOKEN = {"name": "continuation_token", "in": "query", "schema": {"type": "string", "maxLength": 2000}}
WRITE_ERRORS = (*ADMIN_ERRORS, "502", "503")
SCRIPT_RESPONSE = {"content": {"text/plain": {"schema": {"type": "string"}}}}
BOOKING_CHANGE = {"type": "object", "properties": {
    "start": {"type": "string", "maxLength": 40}, "end": {"type": "string", "maxLength": 40},
    "subject": {"type": "string", "maxLength": 300},
    "organizer": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 300},
                                                   "email": {"type": "string", "maxLength": 320}}}}}
RANGE = [{"name": name, "in": "query", "description": "ISO 8601 with an offset, e.g. 2026-12-01T09:00:00Z",
          "schema": {"type": "string", "maxLength": 40}} for name in ("start", "end")]


def _path(name: str, **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1,
                                                                     "maxLength": 64, **schema}}


def _query(name: str, **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": "string", **schema}}


def _operation(summary: str, ok: str, body: dict[str, Any] | None, *, parameters: list[Any] | None = None,
               request: dict[str, Any] | None = None, errors: tuple[str, ...] = ADMIN_ERRORS,
               admin: bool = True) -> dict[str, Any]:
    responses: dict[str, Any] = {ok: {"description": summary, **(body or {})}}
    for code in errors:
        responses[code] = {"description": "error", **_json(_ref("Error"))}
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if parameters:
        operation["parameters"] = parameters
    if request:
        operation["requestBody"] = {"required": True, **request}
    if admin:
        operation["security"] = [{"easyAuth": []}]
    return operation


def _webhook(summary: str) -> dict[str, Any]:
    """Graph's webhooks: 200 text/plain for the validation handshake, 202 for notifications."""
    operation = _operation(f"{summary} (and the validation handshake)", "202", None,
                           parameters=[_query("validationToken", maxLength=1024)],
                           request={"content": {"application/json": {"schema": {"type": "object"}}}},
                           errors=("400", "413", "415"), admin=False)
    operation["requestBody"]["required"] = False
    operation["responses"]["200"] = {"description": "validation token echoed",
                                     "content": {"text/plain": {"schema": {"type": "string"}}}}
    return operation


def _object(**properties: Any) -> dict[str, Any]:
    return _json({"type": "object", "properties": properties})


CSV_BODY = {"content": {"text/csv": {"schema": {"type": "string"}}}}
CSV_RESPONSE = {"content": {"text/csv": {"schema": {"type": "string"}}}}
CAL = [ACCOUNT_ID]
CAL_ONE = [ACCOUNT_ID, EMAIL]

PATHS: dict[str, Any] = {
    "/api/health": {"get": _operation("Storage reachable, tables present, version", "200",
                                      _json({"type": "object"}), errors=("503",), admin=False)},
    "/api/openapi.json": {"get": _operation("This document", "200", _json({"type": "object"}), errors=(),
                                            admin=False)},
    "/api/accounts": {
        "get": _operation("Calendar accounts", "200", _json(_page("Account"))),
        "post": _operation("Add an account (pending consent) and get the consent URL", "201",
                           _json(_ref("AccountWithConsent")),
                           request=_object(tenant_id={"type": "string", "maxLength": 300}),
                           errors=(*ADMIN_ERRORS, "502", "503")),
    },
    "/api/accounts/{account_id}": {
        "get": _operation("One account", "200", _json(_ref("Account")), parameters=CAL),
        "delete": _operation("Remove the account, its calendars and their subscriptions", "200",
                             _object(removed=STRING, calendars_removed={"type": "integer"}), parameters=CAL),
    },
    "/api/accounts/{account_id}/reauthorize": {
        "post": _operation("A fresh consent URL", "200", _json(_ref("AccountWithConsent")), parameters=CAL),
    },
    "/api/accounts/{account_id}/check": {
        "post": _operation("Check the connection now", "200", _json(_ref("Account")), parameters=CAL,
                           errors=(*ADMIN_ERRORS, "502", "503")),
    },
    "/api/consent/callback": {
        "get": _operation("Microsoft's admin-consent redirect; always answers with a redirect to the admin page",
                          "302", None, parameters=[_query(n) for n in ("state", "admin_consent", "tenant", "scope",
                                                                        "error", "error_description")],
                          errors=(), admin=False),
    },
    "/api/accounts/{account_id}/calendars": {
        "get": _operation("Calendars of the account, filtered and paged, with counts per status", "200",
                          _json(_ref("CalendarPage")),
                          parameters=[ACCOUNT_ID, _query("status", enum=["added", "queued", "connecting", "connected",
                                                                          "failed"]),
                                      _query("linked", enum=["true", "false"]), _query("q", maxLength=320),
                                      PAGE_SIZE, TOKEN]),
        "post": _operation("Add one calendar by email, optionally linked", "201", _json(_ref("Calendar")),
                           parameters=CAL, request=_object(email={"type": "string", "maxLength": 400},
                                                           space_id={"type": "string", "maxLength": 100})),
    },
    "/api/accounts/{account_id}/calendars/bulk": {
        "post": _operation("Add chosen rooms in one request", "200", _object(added={"type": "integer"},
                                                                            results={"type": "array"}),
                           parameters=CAL, request=_object(rooms={"type": "array", "maxItems": 50, "items": {
                               "type": "object", "properties": {"email": STRING, "space_id": STRING}}})),
    },
    "/api/accounts/{account_id}/calendars/connect": {
        "post": _operation("Connect Calendars: queue added and failed calendars", "200",
                           _object(queued={"type": "integer"}, next_run_at=_nullable("string")), parameters=CAL),
    },
    "/api/accounts/{account_id}/calendars/{email}": {
        "get": _operation("One calendar", "200", _json(_ref("Calendar")), parameters=CAL_ONE),
        "delete": _operation("Remove the calendar and its subscription; frees its space", "200",
                             _object(removed=STRING, space_freed=_nullable("string")), parameters=CAL_ONE),
    },
    "/api/accounts/{account_id}/calendars/{email}/space": {
        "put": _operation("Link to a space (by id or number)", "200", _json(_ref("Calendar")), parameters=CAL_ONE,
                          request=_object(space_id={"type": "string", "maxLength": 100})),
        "delete": _operation("Unlink from its space", "200", _json(_ref("Calendar")), parameters=CAL_ONE),
    },
    "/api/accounts/{account_id}/rooms": {
        "get": _operation("Discover the tenant's room mailboxes with suggested spaces", "200",
                          _object(items={"type": "array"}, sources={"type": "object"}, note=_nullable("string")),
                          parameters=CAL, errors=(*ADMIN_ERRORS, "502", "503")),
    },
    "/api/audit": {"get": _operation("The audit log, newest first; only one actor's or one action's entries when "
                                     "asked. Refused consent callbacks are counted: one entry a minute with its "
                                     "count", "200", _json(_page("AuditEntry")),
                                     parameters=[PAGE_SIZE, TOKEN, _query("actor", maxLength=256),
                                                 _query("action", maxLength=256)])},
    "/api/spaces": {"get": _operation("Search spaces by number prefix or name", "200", _json(_page("Space")),
                                      parameters=[_query("q", maxLength=200), PAGE_SIZE, TOKEN])},
    "/api/spaces/import": {
        "post": _operation("Import spaces (upsert), JSON or CSV", "200", _json({
            "type": "object", "required": ["added", "updated", "unchanged", "rejected"], "properties": {
                "added": {"type": "integer"}, "updated": {"type": "integer"}, "unchanged": {"type": "integer"},
                "rejected": {"type": "array", "items": {"type": "object", "properties": {
                    "line": {"type": "integer"}, "reason": STRING}}}}}),
                           request={"content": {"application/json": {"schema": {"type": "object", "properties": {
                               # No item limit: the server takes a body of up to 1 MiB.
                               "spaces": {"type": "array", "items": {"type": "object"}}}}},
                               **CSV_BODY["content"]}}),
    },
    "/api/spaces/{space_id}": {"get": _operation("One space and its link", "200", _json(_ref("Space")),
                                                 parameters=[_path("space_id")])},
    "/api/buildings": {"get": _operation("Buildings", "200", _json(_items({
        "id": STRING, "name": STRING, "floor_count": {"type": "integer"}, "space_count": {"type": "integer"}})))},
    "/api/buildings/{building_id}/floors": {
        "get": _operation("Floors of a building", "200", _json(_items({
            "building_id": STRING, "floor": STRING, "space_count": {"type": "integer"}})),
                          parameters=[_path("building_id")])},
    "/api/buildings/{building_id}/floors/{floor}/spaces": {
        "get": _operation("Spaces of a floor", "200", _json(_page("Space")),
                          parameters=[_path("building_id"), _path("floor")])},
    "/api/calendars/template.csv": {"get": _operation("The CSV template", "200", CSV_RESPONSE, errors=("401", "403"))},
    "/api/accounts/{account_id}/calendars.csv": {
        "get": _operation("Export the account's calendars as CSV", "200", CSV_RESPONSE, parameters=CAL)},
    "/api/accounts/{account_id}/imports": {
        "get": _operation("Imports of the account", "200", _json(_page("Import")), parameters=CAL),
        "post": _operation("Upload a CSV to import (202: processed in the background)", "202",
                           _object(import_id=STRING, status=STRING),
                           parameters=[ACCOUNT_ID, _query("validate_only", enum=["true", "false"]),
                                       _query("connect", enum=["true", "false"])], request=CSV_BODY),
    },
    "/api/accounts/{account_id}/imports/{import_id}": {
        "get": _operation("One import: status, counts, rejected rows", "200", _json(_ref("Import")),
                          parameters=[ACCOUNT_ID, _path("import_id")])},
    "/api/accounts/{account_id}/imports/{import_id}/report.csv": {
        "get": _operation("The import's per-row report", "200", CSV_RESPONSE,
                          parameters=[ACCOUNT_ID, _path("import_id")])},
    "/api/connector/status": {"get": _operation(
        "Connector runs: the last finished, the newest interrupted since (killed midway), those running, the next",
        "200", _json(_ref("ConnectorStatus")))},
    "/api/spaces/{space_id}/bookings": {
        "get": _operation("The space's bookings in a range (its linked calendar's), by start; admins and the app "
                          "role bookings.read", "200", _json(_ref("BookingRange")),
                          parameters=[_path("space_id"), *RANGE]),
        "post": _operation("Book the space: the event lands on its room's calendar (Idempotency-Key required); "
                           "admins and the app role bookings.write", "201", _json(_ref("Booking")),
                           parameters=[_path("space_id"), {"name": "Idempotency-Key", "in": "header", "required": True,
                                                           "schema": {"type": "string", "minLength": 1,
                                                                      "maxLength": 128}}],
                           request=_json(BOOKING_CHANGE), errors=WRITE_ERRORS)},
    "/api/spaces/{space_id}/bookings/{booking_id}": {
        "patch": _operation("Move or rename a booking made through this API", "200", _json(_ref("Booking")),
                            parameters=[_path("space_id"), _path("booking_id", maxLength=512)],
                            request=_json(BOOKING_CHANGE), errors=WRITE_ERRORS),
        "delete": _operation("Cancel a booking made through this API", "200",
                             _object(cancelled=STRING, space_id=_nullable("string")),
                             parameters=[_path("space_id"), _path("booking_id", maxLength=512)],
                             errors=WRITE_ERRORS)},
    "/api/accounts/{account_id}/calendars/{email}/test-booking": {
        "post": _operation("Book the next free 15 minutes as a connection test", "201", _json(_ref("Booking")),
                           parameters=CAL_ONE, errors=WRITE_ERRORS)},
    "/api/accounts/{account_id}/calendars/{email}/bookings/{booking_id}": {
        "delete": _operation("Cancel a booking made through this product", "200",
                             _object(cancelled=STRING, space_id=_nullable("string")),
                             parameters=[*CAL_ONE, _path("booking_id", maxLength=512)], errors=WRITE_ERRORS)},
    "/api/accounts/{account_id}/calendars/{email}/bookings": {
        "get": _operation("A calendar's bookings in a range, by start", "200", _json(_ref("BookingRange")),
                          parameters=[ACCOUNT_ID, EMAIL, *RANGE])},
    "/api/bookings/changes": {
        "get": _operation("What changed since a cursor, oldest first; admins and the app role bookings.read",
                          "200", _json(_ref("BookingChanges")),
                          parameters=[_query("cursor", maxLength=64),
                                      {"name": "limit", "in": "query",
                                       "schema": {"type": "integer", "minimum": 1, "maximum": 500}}],
                          errors=(*ADMIN_ERRORS, "410"))},
    "/api/accounts/{account_id}/readiness": {
        "get": _operation("Readiness: how far the app reaches in the tenant and what each room needs", "200",
                          _json(_ref("Readiness")), parameters=CAL)},
    "/api/accounts/{account_id}/readiness/check": {
        "post": _operation("Check again: the app's access, then the account's rooms (or the rooms named)", "200",
                           _json(_ref("Readiness")), parameters=CAL, errors=(*ADMIN_ERRORS, "502", "503"),
                           request=_json({"type": "object", "properties": {"rooms": {
                               "type": "array", "maxItems": MAX_ROOMS_PER_CHECK,
                               "items": {"type": "string", "maxLength": 320}}}}))},
    "/api/accounts/{account_id}/readiness/rbac.ps1": {
        "get": _operation("The RBAC for Applications script that scopes the app to room mailboxes", "200",
                          SCRIPT_RESPONSE, parameters=CAL)},
    "/api/accounts/{account_id}/readiness/room-settings.ps1": {
        "get": _operation("The Set-CalendarProcessing script for the account's rooms (or those named)", "200",
                          SCRIPT_RESPONSE, parameters=[ACCOUNT_ID, _query("rooms", maxLength=4000),
                                                       _query("external", enum=["true", "false"])])},
    "/api/notifications": {"post": _webhook("Graph change notifications")},
    "/api/notifications/lifecycle": {"post": _webhook("Graph lifecycle notifications")},
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "Room Calendar Connector admin API", "version": shared.__version__,
                 "description": "Admin endpoints need an Easy Auth principal with the administrator role; "
                                "state-changing requests need the X-Requested-With header."},
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"easyAuth": {"type": "apiKey", "in": "header", "name": "X-MS-CLIENT-PRINCIPAL",
                                             "description": "Set by App Service Authentication / Static Web Apps"}},
        },
    }


@bp.function_name("openapi_document")
@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@public_endpoint
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(document())
