"""devhost's HTTP side through real HTTP: routes, methods, responses, errors, Easy Auth, static files.

Runs tests/sample_app on its own devhost + Azurite (the `sample_stack` fixture), and
checks the real app's health through the `stack` fixture.
"""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor

import requests

from devhost.stack import Stack
from tests.conftest import ApiSession, signed_in_session
from tests.helpers import wait_until


def get(stack: Stack, path: str, **kwargs: object) -> requests.Response:
    return requests.request(str(kwargs.pop("method", "GET")), stack.base_url + path, timeout=30, **kwargs)


def test_route_parameters_query_headers_and_body_reach_the_handler(sample_stack: Stack) -> None:
    response = get(sample_stack, "/api/items/42?colour=blue", method="PUT", data=b"payload",
                   headers={"X-Custom": "hello"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Sample"] == "yes"
    echo = response.json()
    assert echo["method"] == "PUT"
    assert echo["route_params"] == {"id": "42"}
    assert echo["params"] == {"colour": "blue"}
    assert echo["body"] == "payload"
    assert echo["headers"]["x-custom"] == "hello"


def test_optional_and_catch_all_parameters(sample_stack: Stack) -> None:
    assert get(sample_stack, "/api/things").json()["route_params"] == {}
    assert get(sample_stack, "/api/things/lamp").json()["route_params"] == {"name": "lamp"}
    assert get(sample_stack, "/api/files/a/b/c.csv").json()["route_params"] == {"path": "a/b/c.csv"}


def test_literal_routes_win_and_constraints_filter(sample_stack: Stack) -> None:
    assert get(sample_stack, "/api/things/special").text == "special"
    assert get(sample_stack, "/api/items/search").json()["route_params"] == {}
    assert get(sample_stack, "/api/items/not-a-number").status_code == 404
    assert get(sample_stack, "/api/nothing-here").status_code == 404


def test_undeclared_method_is_405_with_allow(sample_stack: Stack) -> None:
    response = get(sample_stack, "/api/items/1", method="DELETE")
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"GET", "PUT"}
    # No methods declared: every method is allowed.
    assert get(sample_stack, "/api/files/x", method="PATCH").status_code == 200


def test_response_status_headers_and_mimetype_are_passed_through(sample_stack: Stack) -> None:
    response = get(sample_stack, "/api/teapot")
    assert response.status_code == 418
    assert response.headers["Content-Type"] == "text/x-teapot; charset=ascii"
    assert response.headers["X-Brew"] == "earl grey"
    assert response.content == b"short and stout"


def test_async_handler(sample_stack: Stack) -> None:
    assert get(sample_stack, "/api/async/seven").text == "seven"


def test_handler_exception_is_500_without_trace_and_logged(sample_stack: Stack) -> None:
    response = get(sample_stack, "/api/boom")
    assert response.status_code == 500
    assert "secret-detail" not in response.text
    assert "Traceback" not in response.text
    log_path = sample_stack.devhost_log
    assert log_path is not None
    wait_until(lambda: "secret-detail-that-must-not-leak" in log_path.read_text(), timeout=10)
    assert "Traceback" in log_path.read_text()


def test_requests_run_concurrently(sample_stack: Stack) -> None:
    # The handler waits until a second request arrives; serial handling would break the barrier.
    with ThreadPoolExecutor(max_workers=2) as pool:
        responses = list(pool.map(lambda _: get(sample_stack, "/api/pair"), range(2)))
    assert [r.status_code for r in responses] == [200, 200]


def principal_headers(session: requests.Session, stack: Stack, **headers: str) -> dict[str, str]:
    echo = session.get(stack.base_url + "/api/things/x", headers=headers, timeout=30).json()
    return {name: value for name, value in echo["headers"].items() if name.startswith("x-ms-client-principal")}


def test_signed_in_admin_gets_the_app_service_principal_and_a_forged_one_is_replaced(sample_stack: Stack) -> None:
    admin = signed_in_session(sample_stack.base_url, "admin@contoso.onmicrosoft.com", ["administrator"])
    forged = base64.b64encode(json.dumps({"auth_typ": "aad", "claims": [{"typ": "name", "val": "mallory"}],
                                          "name_typ": "name", "role_typ": "roles"}).encode()).decode()
    headers = principal_headers(admin, sample_stack, **{"X-MS-CLIENT-PRINCIPAL": forged,
                                                        "X-MS-CLIENT-PRINCIPAL-NAME": "mallory"})
    principal = json.loads(base64.b64decode(headers["x-ms-client-principal"]))
    assert principal["auth_typ"] == "aad"
    assert principal["name_typ"] == "name" and principal["role_typ"] == "roles"
    assert {"typ": "name", "val": "admin@contoso.onmicrosoft.com"} in principal["claims"]
    assert {"typ": "roles", "val": "administrator"} in principal["claims"]
    assert headers["x-ms-client-principal-name"] == "admin@contoso.onmicrosoft.com"
    assert headers["x-ms-client-principal-idp"] == "aad"
    assert headers["x-ms-client-principal-id"]


def test_client_sent_principal_headers_are_stripped_for_anonymous_callers(sample_stack: Stack) -> None:
    forged = base64.b64encode(b'{"claims":[{"typ":"roles","val":"administrator"}]}').decode()
    headers = principal_headers(requests.Session(), sample_stack, **{
        "X-MS-CLIENT-PRINCIPAL": forged, "x-ms-client-principal-name": "mallory",
        "X-MS-CLIENT-PRINCIPAL-ID": "1", "X-Ms-Client-Principal-Idp": "aad"})
    assert headers == {}


def test_non_admin_sign_in_has_no_role(sample_stack: Stack) -> None:
    viewer = signed_in_session(sample_stack.base_url, "viewer@contoso.onmicrosoft.com", [])
    principal = json.loads(base64.b64decode(principal_headers(viewer, sample_stack)["x-ms-client-principal"]))
    assert not [claim for claim in principal["claims"] if claim["typ"] == "roles"]


def test_dev_sign_in_cookie_me_and_logout(sample_stack: Stack) -> None:
    session = ApiSession(sample_stack.base_url)
    page = session.get("/.auth/login/dev")
    assert page.status_code == 200 and 'name="user"' in page.text and "<script" not in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert session.get("/.auth/me").json() == []
    response = session.post("/.auth/login/dev", data={"user": "a@contoso.com", "roles": ["administrator", "x,y"],
                                                      "post_login_redirect_uri": "/#/accounts"},
                            allow_redirects=False)
    assert response.status_code == 302 and response.headers["Location"] == "/#/accounts"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    me = session.get("/.auth/me").json()
    assert me[0]["user_id"] == "a@contoso.com"
    assert {c["val"] for c in me[0]["user_claims"] if c["typ"] == "roles"} == {"administrator", "x", "y"}
    logout = session.get("/.auth/logout", allow_redirects=False)
    assert logout.status_code == 302
    assert session.get("/.auth/me").json() == []


def test_sign_in_redirects_only_to_same_origin_paths(sample_stack: Stack) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = requests.post(sample_stack.base_url + "/.auth/login/dev",
                                 data={"user": "a@contoso.com", "post_login_redirect_uri": target},
                                 allow_redirects=False, timeout=30)
        assert response.headers["Location"] == "/", target


def test_tampered_session_cookie_is_ignored(sample_stack: Stack) -> None:
    session = signed_in_session(sample_stack.base_url, "viewer@contoso.onmicrosoft.com", [])
    value = session.cookies.get("AppServiceAuthSession")
    payload, _, mac = value.rpartition(".")
    forged = base64.urlsafe_b64encode(json.dumps({"user": "viewer@contoso.onmicrosoft.com",
                                                  "roles": ["administrator"], "iat": 2**31}).encode())
    session.cookies.clear()
    session.cookies.set("AppServiceAuthSession", forged.decode().rstrip("=") + "." + mac)
    assert session.get("/.auth/me").json() == []
    assert principal_headers(session, sample_stack) == {}


def test_static_files_with_security_headers_and_no_escape(sample_stack: Stack) -> None:
    index = get(sample_stack, "/")
    assert index.status_code == 200
    assert index.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in index.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in index.headers["Content-Security-Policy"]
    assert index.headers["X-Content-Type-Options"] == "nosniff"
    assert index.headers["Referrer-Policy"] == "no-referrer"
    assert index.headers["X-Frame-Options"] == "DENY"
    assert get(sample_stack, "/index.html").content == index.content
    for path in ("/../pyproject.toml", "/%2e%2e/pyproject.toml", "/..%2fpyproject.toml", "/missing.js"):
        assert get(sample_stack, path).status_code == 404, path


def test_admin_api_fires_a_timer_and_reports_unknown_functions(sample_stack: Stack) -> None:
    outcome = requests.post(sample_stack.base_url + "/admin/functions/sample_timer?wait=true", json={"input": ""},
                            timeout=60).json()
    assert outcome["outcome"] == "succeeded" and outcome["invocationId"]
    assert requests.post(sample_stack.base_url + "/admin/functions/sample_timer", json={},
                         timeout=60).status_code == 202
    assert requests.post(sample_stack.base_url + "/admin/functions/nope", json={}, timeout=60).status_code == 404


def test_real_app_health_reports_storage_ok(stack: Stack, anonymous: ApiSession) -> None:
    response = anonymous.get("/api/health")
    assert response.status_code == 200
    assert response.json()["storage"]["ok"] is True


def test_stack_stop_leaves_no_process_behind() -> None:
    import psutil

    with Stack.start(in_memory=True, free_ports=True, with_sim=False, app="tests.sample_app.function_app:app",
                     extra_env={"SAMPLE_SCHEDULE": "0 0 0 1 1 *", "SAMPLE_CONTAINER": "unused",
                                "SAMPLE_QUEUE": "unused"}) as running:
        started = [psutil.Process(process.popen.pid) for process in running.processes]
        family = started + [child for parent in started for child in parent.children(recursive=True)]
        assert {process.name for process in running.processes} == {"azurite", "devhost"}
    gone, alive = psutil.wait_procs(family, timeout=10)
    assert alive == []
