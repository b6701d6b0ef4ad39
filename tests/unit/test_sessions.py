"""The outbound session: the proxy environment honoured as requests does, read once per origin, ~/.netrc never."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from shared import sessions
from shared.sessions import Session


@pytest.fixture
def proxied(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "ALL_PROXY",
                 "all_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.contoso.test:3128")
    monkeypatch.setenv("NO_PROXY", "storage.contoso.test")


def settings(session: requests.Session, url: str) -> dict:
    return session.merge_environment_settings(url, {}, None, None, None)


def test_the_proxy_environment_is_honoured_as_requests_honours_it(proxied: None) -> None:
    ours, plain = Session(), requests.Session()
    for url in ("https://graph.microsoft.com/v1.0/users", "https://storage.contoso.test/Tables"):
        assert settings(ours, url) == settings(plain, url)
    assert settings(ours, "https://graph.microsoft.com/v1.0/users")["proxies"]["https"] == "http://proxy.contoso.test:3128"
    assert "https" not in settings(ours, "https://storage.contoso.test/Tables")["proxies"]


def test_the_proxy_environment_is_read_once_per_origin(proxied: None, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    real = sessions.get_environ_proxies

    def counting(url: str, no_proxy: str | None = None) -> dict[str, str]:
        reads.append(url)
        return real(url, no_proxy=no_proxy)

    monkeypatch.setattr(sessions, "get_environ_proxies", counting)
    session = Session()
    for page in range(5):
        settings(session, f"https://graph.microsoft.com/v1.0/users?page={page}")
        settings(session, f"https://storage.contoso.test/Tables(PartitionKey='{page}')")
    assert len(reads) == 2


def test_a_request_level_proxy_still_wins(proxied: None) -> None:
    merged = Session().merge_environment_settings("https://graph.microsoft.com/", {"https": "http://other:1"}, None,
                                                  None, None)
    assert merged["proxies"]["https"] == "http://other:1"


def test_credentials_in_netrc_never_reach_a_request(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine graph.microsoft.com login someone password secret\n", encoding="utf-8")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    request = requests.Request("GET", "https://graph.microsoft.com/v1.0/users")
    assert "Authorization" in requests.Session().prepare_request(request).headers  # what requests does by default
    assert "Authorization" not in Session().prepare_request(request).headers
