"""Route templates and route precedence (devhost.routes), as Azure Functions (ASP.NET Core) match them."""

from __future__ import annotations

import pytest

from devhost.routes import RouteError, RouteTable, RouteTemplate

GUID = "3f0c2d9a-5b7e-4c1a-9d2f-8e6b4a1c0d57"


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("health", "/health", {}),
        ("health", "/HEALTH", {}),
        ("health", "/health/", {}),
        ("health", "/healthz", None),
        ("accounts/{id}", "/accounts/abc", {"id": "abc"}),
        ("accounts/{id}", "/accounts/a%20b", {"id": "a b"}),
        ("accounts/{id}", "/accounts", None),
        ("accounts/{id}", "/accounts/a/b", None),
        ("items/{id?}", "/items", {}),
        ("items/{id?}", "/items/7", {"id": "7"}),
        ("items/{id:int}", "/items/7", {"id": "7"}),
        ("items/{id:int}", "/items/x", None),
        ("items/{id:guid}", f"/items/{GUID}", {"id": GUID}),
        ("items/{id:guid}", "/items/123", None),
        ("files/{*path}", "/files", {}),
        ("files/{*path}", "/files/a/b/c.csv", {"path": "a/b/c.csv"}),
        ("files/{*path}", "/files/a%2Fb", {"path": "a/b"}),
        ("x/{name}.{ext}", "/x/report.2024.csv", {"name": "report.2024", "ext": "csv"}),
        ("", "", {}),
    ],
)
def test_template_matching(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert RouteTemplate.compile(template).match(path) == expected


@pytest.mark.parametrize("template", ["a/{*rest}/b", "a/{id?}/b", "a/{id}/{id}", "a/{id:nope}", "a//b"])
def test_bad_templates_are_refused(template: str) -> None:
    with pytest.raises(RouteError):
        RouteTemplate.compile(template)


def build(*routes: tuple[str, list[str]]) -> RouteTable[str]:
    table: RouteTable[str] = RouteTable()
    for template, methods in routes:
        table.add(template, methods, template)
    return table


def test_literal_segments_win_over_parameters_whatever_the_order() -> None:
    for order in (1, -1):
        routes = [("calendars/{email}", ["GET"]), ("calendars/search", ["GET"]), ("calendars/{*rest}", ["GET"])]
        table = build(*routes[::order])
        assert table.resolve("GET", "/calendars/search") == ("calendars/search", {})
        assert table.resolve("GET", "/calendars/a@b.c") == ("calendars/{email}", {"email": "a@b.c"})
        assert table.resolve("GET", "/calendars/a/b") == ("calendars/{*rest}", {"rest": "a/b"})


def test_constrained_parameters_win_over_plain_ones() -> None:
    table = build(("n/{name}", ["GET"]), ("n/{id:int}", ["GET"]))
    assert table.resolve("GET", "/n/5") == ("n/{id:int}", {"id": "5"})
    assert table.resolve("GET", "/n/five") == ("n/{name}", {"name": "five"})


def test_methods_select_among_matching_routes_and_405_lists_the_allowed_ones() -> None:
    table = build(("accounts/{id}", ["GET", "DELETE"]), ("accounts/{id}", ["POST"]), ("open", []))
    assert table.resolve("post", "/accounts/1") == ("accounts/{id}", {"id": "1"})
    assert table.resolve("PUT", "/accounts/1") == {"GET", "DELETE", "POST"}
    assert table.resolve("PATCH", "/open") == ("open", {})
    assert table.resolve("GET", "/nowhere") is None
