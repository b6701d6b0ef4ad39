"""devhost's request guard: which Host headers it answers, and which sign-in/admin requests look cross-site."""

from __future__ import annotations

import pytest

from devhost.guard import RequestGuard, host_name, origin_of


def test_host_names_are_read_with_ports_and_ipv6_brackets() -> None:
    assert host_name("127.0.0.1:7071") == "127.0.0.1"
    assert host_name("LocalHost") == "localhost"
    assert host_name("[::1]:7071") == "::1"
    assert host_name("[::1]") == "::1"
    for malformed in ("localhost:port", "[::1", "[::1]x", "::1", ""):
        assert host_name(malformed) is None, malformed


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:7071", "localhost:1", "LOCALHOST:7071", "[::1]:7071"])
def test_loopback_hosts_with_any_port_are_answered(host: str) -> None:
    assert RequestGuard("http://127.0.0.1:7071").host_problem(host) is None


@pytest.mark.parametrize("host", ["evil.example", "evil.example:7071", "127.0.0.1.evil.example",
                                  "localhost.evil.example", "192.168.1.20:7071", "0.0.0.0:7071", "[::1", ""])
def test_other_hosts_are_refused_with_a_reason(host: str) -> None:
    problem = RequestGuard("http://127.0.0.1:7071").host_problem(host)
    assert problem is not None and "does not answer for Host" in problem


def test_the_public_base_url_host_is_answered_too() -> None:
    guard = RequestGuard("https://rcc.example.com/")
    assert guard.host_problem("rcc.example.com") is None
    assert guard.host_problem("rcc.example.com:443") is None
    assert guard.host_problem("other.example.com") is not None
    assert guard.cross_site_problem(origin="https://rcc.example.com", fetch_site="same-origin", scheme="http",
                                    host_header="127.0.0.1:7071") is None


def test_origins_are_compared_as_browsers_write_them() -> None:
    assert origin_of("HTTPS", "Rcc.Example.com:443") == "https://rcc.example.com"
    assert origin_of("http", "127.0.0.1:7071") == "http://127.0.0.1:7071"


def cross_site(origin: str | None, fetch_site: str | None) -> str | None:
    return RequestGuard("http://127.0.0.1:7071").cross_site_problem(
        origin=origin, fetch_site=fetch_site, scheme="http", host_header="127.0.0.1:7071")


def test_same_origin_and_header_less_requests_pass() -> None:
    assert cross_site(None, None) is None  # scripts, tests, m365sim
    assert cross_site("http://127.0.0.1:7071", "same-origin") is None
    assert cross_site(None, "none") is None  # typed into the address bar
    # The sign-in page's own form under its `Referrer-Policy: no-referrer`: the browser writes Origin "null".
    assert cross_site("null", "same-origin") is None


@pytest.mark.parametrize(("origin", "fetch_site"), [
    ("https://evil.example", None),
    ("null", None),  # sandboxed frames, some redirects; without Sec-Fetch-Site nothing says it is ours
    ("null", "cross-site"),
    ("http://127.0.0.1:8080", None),  # another local server is another origin
    ("http://localhost:7071", None),  # another name is another origin too
    (None, "cross-site"),
    (None, "same-site"),
    ("http://127.0.0.1:7071", "cross-site"),
])
def test_requests_from_other_pages_are_refused(origin: str | None, fetch_site: str | None) -> None:
    assert cross_site(origin, fetch_site) is not None
