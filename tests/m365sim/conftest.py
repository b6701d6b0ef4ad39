"""Fixtures for the simulator's own tests: one m365sim process per session (HTTPS on a free
port), an isolated generated tenant per test, tokens, and a tiny local webhook receiver.

The simulator is reached over real HTTPS with its CA as the only trust anchor.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
CONTOSO_ID = "6f1c2a4e-8b3d-4e5f-9a7b-0c1d2e3f4a5b"
FABRIKAM_ID = "0b9e8d7c-6a5f-4e3d-8c2b-1a0f9e8d7c6b"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def sim_session(ca_path: Path) -> requests.Session:
    """A Session that trusts only the simulator's CA.

    trust_env is off because requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE in the environment
    override `Session.verify` (psf/requests#3829); this machine sets them.
    """
    session = requests.Session()
    session.verify = str(ca_path)
    session.trust_env = False
    return session


@dataclass
class Sim:
    base: str
    ca_path: Path
    state_dir: Path
    client_id: str
    client_secret: str
    redirect_uri: str
    process: subprocess.Popen[str]

    def session(self) -> requests.Session:
        return sim_session(self.ca_path)

    def control(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        with self.session() as session:
            return session.request(method, f"{self.base}/_sim/{path.lstrip('/')}", timeout=30, **kwargs)

    def knobs(self, tenant_id: str, **knobs: Any) -> dict[str, Any]:
        response = self.control("PATCH", f"tenants/{tenant_id}/knobs", json=knobs)
        assert response.status_code == 200, response.text
        return response.json()

    def token(self, tenant: str) -> str:
        with self.session() as session:
            response = session.post(
                f"{self.base}/{tenant}/oauth2/v2.0/token",
                data={"grant_type": "client_credentials", "client_id": self.client_id,
                      "client_secret": self.client_secret, "scope": GRAPH_SCOPE},
                timeout=30,
            )
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def graph(self, method: str, path: str, token: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        url = path if path.startswith("https://") else f"{self.base}/v1.0/{path.lstrip('/')}"
        with self.session() as session:
            return session.request(method, url, headers=headers, timeout=30, **kwargs)


def start_sim(state_dir: Path, client_id: str, secret: str, redirect_uri: str) -> Sim:
    env = {**os.environ, "M365SIM_CLIENT_SECRET": secret}
    process = subprocess.Popen(
        [sys.executable, "-m", "m365sim", "--host", "127.0.0.1", "--port", "0", "--state-dir", str(state_dir),
         "--client-id", client_id, "--redirect-uri", redirect_uri, "--redirect-uri", "https://app.example/cb"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        process.wait()
        raise RuntimeError(f"m365sim did not start: {line!r}")
    base = line.split()[3]
    sim = Sim(base, state_dir / "ca.pem", state_dir, client_id, secret, redirect_uri, process)
    deadline = time.monotonic() + 30
    while True:
        try:
            if sim.control("GET", "health").status_code == 200:
                return sim
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            stop_sim(sim)
            raise RuntimeError("m365sim never became healthy")
        time.sleep(0.05)


def stop_sim(sim: Sim) -> int:
    sim.process.send_signal(signal.SIGTERM)
    try:
        return sim.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        sim.process.kill()
        sim.process.wait()
        raise
    finally:
        if sim.process.stdout is not None:
            sim.process.stdout.close()


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    state_dir = tmp_path_factory.mktemp("m365sim-state")
    started = start_sim(state_dir, str(uuid.uuid4()), secrets.token_urlsafe(24), "http://127.0.0.1:9/api/consent/callback")
    try:
        yield started
    finally:
        stop_sim(started)


@pytest.fixture
def new_tenant(sim: Sim) -> Any:
    """Factory: an isolated generated tenant (consented unless asked otherwise)."""

    def create(rooms: int = 5, consented: bool = True) -> dict[str, Any]:
        response = sim.control("POST", "tenants", json={"rooms": rooms, "consented": consented})
        assert response.status_code == 201, response.text
        return response.json()

    return create


@pytest.fixture
def tenant(new_tenant: Any) -> dict[str, Any]:
    return new_tenant()


@dataclass
class Webhook:
    """A local HTTP/1.1 endpoint (keeps connections alive) answering Graph's validation handshake
    (`mode`) and recording posts and the client port each came from. The next `failures`
    notification posts are answered 503 (and recorded in `refused`)."""

    url: str
    mode: str = "echo"
    failures: int = 0
    validations: list[str] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    client_ports: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def items(self) -> list[dict[str, Any]]:
        """Every change notification received, flattened out of the posts' `value` arrays."""
        with self.lock:
            return [item for post in self.notifications for item in (post["body"] or {}).get("value", [])]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 30  # an idle kept-alive connection ends its handler thread after this

        def log_message(self, format: str, *args: Any) -> None:
            return

        def do_POST(self) -> None:
            hook.client_ports.append(self.client_address[1])
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            query = parse_qs(urlsplit(self.path).query)
            if "validationToken" in query:
                validation_token = query["validationToken"][0]
                hook.validations.append(self.path)
                if hook.mode == "echo":
                    answer, content_type = validation_token, "text/plain; charset=utf-8"
                elif hook.mode == "json":
                    answer, content_type = json.dumps(validation_token), "application/json"
                else:
                    answer, content_type = "not the token", "text/plain"
                data = answer.encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            with hook.lock:
                refuse = hook.failures > 0
                if refuse:
                    hook.failures -= 1
                (hook.refused if refuse else hook.notifications).append(
                    {"path": self.path, "body": json.loads(body or b"null")})
            self.send_response(503 if refuse else 202)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    hook.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
