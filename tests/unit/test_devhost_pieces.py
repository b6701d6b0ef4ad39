"""devhost's pure pieces: %SETTING% resolution, host.json, the app's metadata, Easy Auth cookies and redirects."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from devhost.easyauth import SessionSigner, parse_roles, safe_redirect
from devhost.functions import StartupError, load_app, read_functions, read_host_json, resolve_expressions

SAMPLE_ENV = {"SAMPLE_SCHEDULE": "*/5 * * * * *", "SAMPLE_CONTAINER": "uploads", "SAMPLE_QUEUE": "changes",
              "AzureWebJobsStorage": "x"}


def test_setting_expressions_resolve_and_a_missing_setting_is_a_clear_error() -> None:
    assert resolve_expressions("%A%/{name}", {"A": "box"}, "here") == "box/{name}"
    with pytest.raises(StartupError, match="'MISSING'"):
        resolve_expressions("%MISSING%", {}, "function f")


def test_sample_app_functions_are_read_from_the_library_metadata() -> None:
    app, directory = load_app("tests.sample_app.function_app:app")
    specs = {spec.name: spec for spec in read_functions(app, directory, SAMPLE_ENV)}
    assert specs["sample_timer"].kind == "timer"
    assert specs["sample_timer"].trigger["schedule"] == "*/5 * * * * *"
    assert specs["sample_blob"].trigger["path"] == "uploads/{name}"
    assert specs["sample_blob"].function_id == "Host.Functions.sample_blob"
    assert specs["item"].trigger["methods"] == ["GET", "PUT"]
    assert specs["sample_queue"].kind == "queue"
    assert specs["sample_queue"].trigger["queueName"] == "changes"  # %SAMPLE_QUEUE%
    assert specs["sample_queue"].trigger["connection"] == "DataStorage"
    assert specs["sample_queue"].trigger_annotation is None  # a func.QueueMessage parameter
    # get_functions() indexes an app once (as the worker does): a fresh app for the second reading.
    import tests.sample_app.function_app as module

    fresh = importlib.reload(module).app
    with pytest.raises(StartupError, match="SAMPLE_SCHEDULE"):
        read_functions(fresh, directory, {"SAMPLE_CONTAINER": "uploads"})


def test_host_json_route_prefix_and_timeout(tmp_path: Path) -> None:
    assert read_host_json(tmp_path).route_prefix == "api"
    (tmp_path / "host.json").write_text(json.dumps({"functionTimeout": "01:02:03",
                                                    "extensions": {"http": {"routePrefix": ""}}}))
    config = read_host_json(tmp_path)
    assert config.route_prefix == "" and config.function_timeout_seconds == 3723


def test_session_cookie_round_trips_and_resists_tampering(tmp_path: Path) -> None:
    signer = SessionSigner.from_data_dir(tmp_path)
    assert (tmp_path / "session-key").stat().st_mode & 0o077 == 0
    cookie = signer.issue("a@contoso.com", ["administrator"])
    session = signer.read(cookie)
    assert session is not None and session.user == "a@contoso.com" and session.roles == ("administrator",)
    assert SessionSigner.from_data_dir(tmp_path).read(cookie) == session  # the key survives restarts
    assert signer.read(cookie[:-1] + ("0" if cookie[-1] != "0" else "1")) is None
    assert SessionSigner(b"another key").read(cookie) is None
    assert signer.read("garbage") is None


def test_principal_header_is_app_service_shaped(tmp_path: Path) -> None:
    import base64

    session = SessionSigner.from_data_dir(tmp_path).read(SessionSigner.from_data_dir(tmp_path).issue("u@x", ["r"]))
    assert session is not None
    headers = session.principal_headers()
    principal = json.loads(base64.b64decode(headers["X-MS-CLIENT-PRINCIPAL"]))
    assert principal["auth_typ"] == "aad" and principal["name_typ"] == "name" and principal["role_typ"] == "roles"
    assert {"typ": "roles", "val": "r"} in principal["claims"]
    assert headers["X-MS-CLIENT-PRINCIPAL-NAME"] == "u@x"


def test_roles_and_redirects() -> None:
    assert parse_roles(["administrator", "a, b", "a", ""]) == ["administrator", "a", "b"]
    assert safe_redirect("/accounts?x=1") == "/accounts?x=1"
    for unsafe in (None, "", "https://evil.example", "//evil.example", "/\\evil", "javascript:alert(1)", "/a\r\nb"):
        assert safe_redirect(unsafe) == "/"
