"""Session-wide fixtures: the local system started once per test session, and signed-in clients.

`stack` runs the real `function_app:app` on devhost with an in-memory Azurite (and
m365sim when the package exists), on free ports; every process is stopped at the end,
also when tests fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from devhost.stack import Stack, sim_available

ADMIN_USER = "admin@contoso.onmicrosoft.com"
NON_ADMIN_USER = "viewer@contoso.onmicrosoft.com"


class ApiSession(requests.Session):
    """A `requests.Session` bound to one base URL: `session.get("/api/health")` works."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if isinstance(url, str) and url.startswith("/"):
            url = self.base_url + url
        kwargs.setdefault("timeout", 60)
        return super().request(method, url, *args, **kwargs)


def signed_in_session(base_url: str, user: str, roles: list[str]) -> ApiSession:
    """Sign in through devhost's Easy Auth emulation, as the browser would."""
    session = ApiSession(base_url)
    response = session.post("/.auth/login/dev", data={"user": user, "roles": ",".join(roles)},
                            allow_redirects=False)
    assert response.status_code == 302, response.text
    me = session.get("/.auth/me").json()
    assert me and me[0]["user_id"] == user, me
    session.headers["X-Requested-With"] = "XMLHttpRequest"
    return session


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with Stack.start(in_memory=True, free_ports=True, with_sim=sim_available()) as running:
        yield running


@pytest.fixture(scope="session")
def admin(stack: Stack) -> ApiSession:
    return signed_in_session(stack.base_url, ADMIN_USER, ["administrator"])


@pytest.fixture(scope="session")
def non_admin(stack: Stack) -> ApiSession:
    return signed_in_session(stack.base_url, NON_ADMIN_USER, [])


@pytest.fixture(scope="session")
def anonymous(stack: Stack) -> ApiSession:
    return ApiSession(stack.base_url)


def firing(base_url: str) -> Callable[..., dict[str, Any]]:
    """Run a timer, blob or queue function now through devhost's admin API; with wait=True, its outcome."""

    def run(function_name: str, wait: bool = True, input: str = "") -> dict[str, Any]:  # noqa: A002
        response = requests.post(f"{base_url}/admin/functions/{function_name}",
                                 params={"wait": "true"} if wait else None, json={"input": input}, timeout=600)
        assert response.status_code == (200 if wait else 202), response.text
        return response.json() if wait else {}

    return run


@pytest.fixture(scope="session")
def fire(stack: Stack) -> Callable[..., dict[str, Any]]:
    return firing(stack.base_url)


@pytest.fixture(scope="session")
def app_context(stack: Stack) -> Any:
    from shared.context import AppContext
    from shared.settings import Settings

    return AppContext.build(Settings.from_environment(stack.env))


# A 3-second queue lease: a message of a killed devhost comes back within seconds.
SAMPLE_ENV = {"SAMPLE_SCHEDULE": "* * * * * *", "SAMPLE_CONTAINER": "sample-uploads", "SAMPLE_QUEUE": "sample-queue",
              "DEVHOST_QUEUE_LEASE_SECONDS": "3"}


@pytest.fixture(scope="session")
def sample_stack() -> Iterator[Stack]:
    """devhost running tests/sample_app (every trigger kind) on its own Azurite, without m365sim."""
    with Stack.start(in_memory=True, free_ports=True, with_sim=False, app="tests.sample_app.function_app:app",
                     extra_env=SAMPLE_ENV) as running:
        yield running


@pytest.fixture(scope="session")
def fire_sample(sample_stack: Stack) -> Callable[..., dict[str, Any]]:
    """`fire` for the sample app's devhost."""

    def run(function_name: str, input: str = "") -> dict[str, Any]:
        response = requests.post(f"{sample_stack.base_url}/admin/functions/{function_name}",
                                 params={"wait": "true"}, json={"input": input}, timeout=600)
        assert response.status_code == 200, response.text
        return response.json()

    return run
