"""web/staticwebapp.config.json: who reaches which route, and the security headers.

The route table is evaluated the way Static Web Apps does it (first matching route
wins; a route with `methods` matches only those methods; `/*` is a prefix wildcard).
https://learn.microsoft.com/azure/static-web-apps/configuration#routes
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from shared.settings import DEFAULT_ADMIN_ROLE
from tests.infra.support import REPO

CONFIG = json.loads((REPO / "web" / "staticwebapp.config.json").read_text())
ANONYMOUS_ENDPOINTS = {
    ("GET", "/api/consent/callback"),  # Microsoft's admin-consent redirect: the browser has no session to rely on
    ("POST", "/api/notifications"),  # Graph change notifications and their validation handshake
    ("POST", "/api/notifications/lifecycle"),  # Graph lifecycle notifications
    ("GET", "/api/health"),  # availability probes
}


def matching_route(method: str, path: str) -> dict[str, Any] | None:
    for route in CONFIG["routes"]:
        pattern = route["route"]
        if pattern.endswith("/*"):
            matches = path == pattern[:-2] or path.startswith(pattern[:-1])
        else:
            matches = path == pattern
        if matches and method in route.get("methods", [method]):
            return route
    return None


def allowed_roles(method: str, path: str) -> set[str]:
    route = matching_route(method, path)
    assert route is not None, f"{method} {path} matches no route: add a catch-all"
    return set(route.get("allowedRoles", ["anonymous"]))


@pytest.mark.parametrize(("method", "path"), sorted(ANONYMOUS_ENDPOINTS))
def test_microsoft_reaches_its_endpoints_without_sign_in(method: str, path: str) -> None:
    assert "anonymous" in allowed_roles(method, path)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/index.html"),
        ("GET", "/js/app.js"),
        ("GET", "/api/accounts"),
        ("POST", "/api/accounts"),
        ("DELETE", "/api/accounts/contoso/calendars/room@contoso.com"),
        ("GET", "/api/notifications"),  # only POST is Graph's
        ("DELETE", "/api/notifications/lifecycle"),
        ("POST", "/api/consent/callback"),  # only GET is Microsoft's redirect
        ("POST", "/api/health"),
    ],
)
def test_everything_else_needs_the_administrator_role(method: str, path: str) -> None:
    assert allowed_roles(method, path) == {DEFAULT_ADMIN_ROLE}


def test_only_the_listed_endpoints_are_anonymous() -> None:
    anonymous = {
        (method, route["route"])
        for route in CONFIG["routes"]
        if "anonymous" in route.get("allowedRoles", []) or "authenticated" in route.get("allowedRoles", [])
        for method in route.get("methods", ["*"])
    }
    assert anonymous == ANONYMOUS_ENDPOINTS


def test_sign_in_is_microsoft_entra_only() -> None:
    for provider in ("github", "twitter", "x"):
        route = matching_route("GET", f"/.auth/login/{provider}")
        assert route is not None and route.get("statusCode") == 404, f"{provider} sign-in must be blocked"
    unauthorized = CONFIG["responseOverrides"]["401"]
    assert unauthorized["statusCode"] == 302
    assert unauthorized["redirect"].startswith("/.auth/login/aad")


def test_role_matches_the_app_and_the_bicep() -> None:
    main_bicep = (REPO / "infra" / "main.bicep").read_text()
    assert re.search(rf"param adminRole string = '{DEFAULT_ADMIN_ROLE}'", main_bicep)


def test_content_security_policy_is_strict() -> None:
    policy = {
        directive.split()[0]: directive.split()[1:]
        for directive in CONFIG["globalHeaders"]["Content-Security-Policy"].split(";")
        if directive.strip()
    }
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    every_source = " ".join(" ".join(sources) for sources in policy.values())
    assert "'unsafe-inline'" not in every_source and "'unsafe-eval'" not in every_source and "*" not in every_source


def test_security_headers_are_set() -> None:
    headers = CONFIG["globalHeaders"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] in {"no-referrer", "same-origin", "strict-origin-when-cross-origin"}
    max_age = re.search(r"max-age=(\d+)", headers["Strict-Transport-Security"])
    assert max_age and int(max_age.group(1)) >= 31536000


def test_admin_page_has_no_inline_script_or_style() -> None:
    # The policy above blocks them in Azure; catch them here rather than on a blank page there.
    for page in (REPO / "web").rglob("*.html"):
        html = page.read_text()
        where = page.relative_to(REPO)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html, re.IGNORECASE), f"{where}: inline <script>"
        assert not re.search(r"<style\b", html, re.IGNORECASE), f"{where}: inline <style>"
        assert not re.search(r"\s(on[a-z]+|style)\s*=", html, re.IGNORECASE), f"{where}: inline handler or style"
