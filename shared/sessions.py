"""The `requests` sessions every outbound call goes through: Entra ID and Graph, and the storage SDKs.

Owns two things requests and azure-core leave to each request or to a small default. requests
looks up the proxy environment (HTTP(S)_PROXY, NO_PROXY) for every request, and that lookup
walks `os.environ` twice: a quarter of a booking write's CPU went there. The environment does
not change under a running process, so it is read once per origin (a new origin is read when
first used; `NO_PROXY` is honoured as before). azure-core's default transport keeps 10
connections per host, fewer than the threads that share a storage client here, so the rest
were opened and thrown away ("Connection pool is full"). And requests would take credentials
for a host from `~/.netrc` (a file read per request): every call here carries its own (a
bearer token, the storage key or managed identity), so the session never looks there. It never
retries: the SDKs' and the Graph client's own policies decide that.
"""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.auth
from azure.core.pipeline.transport import RequestsTransport
from requests.adapters import HTTPAdapter
from requests.sessions import merge_setting
from requests.utils import get_environ_proxies
from urllib3.util.retry import Retry

POOL_SIZE = 32
# Origins whose proxy environment is remembered; more than this and the memory starts again.
MAX_ORIGINS = 64


class _OwnCredentials(requests.auth.AuthBase):
    """Set as the session's auth so requests never adds credentials from ~/.netrc."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


class Session(requests.Session):
    """A requests session that reads the proxy environment once per origin and never ~/.netrc."""

    def __init__(self, pool_size: int = POOL_SIZE) -> None:
        super().__init__()
        self.auth = _OwnCredentials()
        self._environment: dict[tuple[str, str, str | None], dict[str, str]] = {}
        self._lock = threading.Lock()
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size,
                              max_retries=Retry(total=False, redirect=False, raise_on_status=False))
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def merge_environment_settings(self, url, proxies, stream, verify, cert):  # type: ignore[no-untyped-def]
        """What `requests.Session.merge_environment_settings` answers, with the proxy lookup remembered."""
        if self.trust_env:
            no_proxy = proxies.get("no_proxy") if proxies is not None else None
            if proxies is not None:
                for key, value in self._environ_proxies(url, no_proxy).items():
                    proxies.setdefault(key, value)
            if verify is True or verify is None:
                verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or verify
        return {"proxies": merge_setting(proxies, self.proxies), "stream": merge_setting(stream, self.stream),
                "verify": merge_setting(verify, self.verify), "cert": merge_setting(cert, self.cert)}

    def _environ_proxies(self, url: str, no_proxy: str | None) -> dict[str, str]:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, no_proxy)
        found = self._environment.get(key)
        if found is None:
            found = get_environ_proxies(url, no_proxy=no_proxy)
            with self._lock:
                if len(self._environment) >= MAX_ORIGINS:
                    self._environment.clear()
                self._environment[key] = found
        return found


def storage_transport(**connection: Any) -> RequestsTransport:
    """The transport of one storage service client (tables, blobs or queues) and the clients it makes.
    `connection` is azure-core's connection settings (`connection_timeout`, `read_timeout`): a client
    given its transport no longer passes its own to it."""
    return RequestsTransport(session=Session(), **connection)
