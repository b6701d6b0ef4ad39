"""devhost against DNS rebinding and other web pages: Host checks, cross-site sign-in and admin requests.

Through real HTTP on the sample app's devhost (`sample_stack`). A browser sends `Origin` on
posts and `Sec-Fetch-Site` on every request; scripts, tests and m365sim send neither.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests

from devhost.stack import Stack

EVIL = "https://evil.example"


def port(stack: Stack) -> int:
    return int(urlsplit(stack.base_url).port or 0)


@pytest.mark.parametrize("path", ["/api/health", "/admin/host/status", "/", "/.auth/login/dev"])
@pytest.mark.parametrize("host", ["evil.example", "rebound.evil.example:{port}", "127.0.0.1.evil.example"])
def test_a_foreign_host_header_is_refused_before_dispatch(sample_stack: Stack, path: str, host: str) -> None:
    response = requests.get(sample_stack.base_url + path, headers={"Host": host.format(port=port(sample_stack))},
                            timeout=30)
    assert response.status_code == 403
    assert "does not answer for Host" in response.text


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", "localhost", "127.0.0.1:1"])
def test_loopback_host_names_with_any_port_are_answered(sample_stack: Stack, host: str) -> None:
    response = requests.get(sample_stack.base_url + "/api/health",
                            headers={"Host": host.format(port=port(sample_stack))}, timeout=30)
    assert response.status_code == 200 and response.text == "ok"


@pytest.mark.parametrize("headers", [{"Origin": EVIL}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                                     {"Sec-Fetch-Site": "same-site"}])
def test_a_cross_site_sign_in_post_is_refused(sample_stack: Stack, headers: dict[str, str]) -> None:
    # Login CSRF: another page's form would sign the developer in as the attacker's user.
    response = requests.post(sample_stack.base_url + "/.auth/login/dev", headers=headers, allow_redirects=False,
                             data={"user": "mallory@evil.example", "roles": "administrator"}, timeout=30)
    assert response.status_code == 403
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize("origin", ["{base_url}", "null"])
def test_the_sign_in_pages_own_post_still_signs_in(sample_stack: Stack, origin: str) -> None:
    # Chromium writes "null" for the form's post: the page is served with Referrer-Policy: no-referrer.
    response = requests.post(sample_stack.base_url + "/.auth/login/dev", allow_redirects=False, timeout=30,
                             headers={"Origin": origin.format(base_url=sample_stack.base_url),
                                      "Sec-Fetch-Site": "same-origin"},
                             data={"user": "a@contoso.com", "roles": "administrator"})
    assert response.status_code == 302 and "AppServiceAuthSession=" in response.headers["Set-Cookie"]


@pytest.mark.parametrize("headers", [{"Origin": EVIL}, {"Sec-Fetch-Site": "cross-site"},
                                     {"Origin": "http://localhost:1", "Sec-Fetch-Site": "same-site"}])
def test_the_admin_api_refuses_requests_from_web_pages(sample_stack: Stack, headers: dict[str, str]) -> None:
    run = requests.post(sample_stack.base_url + "/admin/functions/sample_timer?wait=true", headers=headers,
                        json={"input": ""}, timeout=30)
    assert run.status_code == 403 and "not for web pages" in run.json()["error"]
    status = requests.get(sample_stack.base_url + "/admin/host/status", headers=headers, timeout=30)
    assert status.status_code == 403


def test_scripts_and_webhook_posts_without_origin_keep_working(sample_stack: Stack) -> None:
    # m365sim posts notifications this way: Host 127.0.0.1:port, no Origin, no Sec-Fetch-Site.
    posted = requests.post(sample_stack.base_url + "/api/files/notifications", data=b'{"value": []}',
                           headers={"Content-Type": "application/json"}, timeout=30)
    assert posted.status_code == 200 and posted.json()["body"] == '{"value": []}'
    run = requests.post(sample_stack.base_url + "/admin/functions/sample_timer?wait=true", json={"input": ""},
                        timeout=30)
    assert run.status_code == 200 and run.json()["outcome"] == "succeeded"
