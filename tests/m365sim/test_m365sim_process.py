"""The m365sim process contract: HTTPS with its own CA in the state dir (key files 0600), the
CA reused across restarts, clean exit on SIGTERM, control API basics, the generator."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import REPO_ROOT, Sim, start_sim, stop_sim

from m365sim.state import generate_tenant_spec


def test_restart_reuses_the_ca_and_sigterm_exits_cleanly(tmp_path: Path) -> None:
    first = start_sim(tmp_path, str(uuid.uuid4()), "s3cret-a", "http://127.0.0.1:9/cb")
    ca_before = (tmp_path / "ca.pem").read_bytes()
    assert stop_sim(first) == 0
    for key_file in ("ca-key.pem", "server-key.pem", "token-signing-key.pem"):
        assert stat.S_IMODE(os.stat(tmp_path / key_file).st_mode) == 0o600
    second = start_sim(tmp_path, str(uuid.uuid4()), "s3cret-b", "http://127.0.0.1:9/cb")
    try:
        assert (tmp_path / "ca.pem").read_bytes() == ca_before
        with second.session() as session:
            assert session.get(f"{second.base}/_sim/health", timeout=30).status_code == 200
    finally:
        assert stop_sim(second) == 0


def test_untrusted_clients_fail_tls(sim: Sim) -> None:
    session = requests.Session()
    session.trust_env = False
    with pytest.raises(requests.exceptions.SSLError):
        session.get(f"{sim.base}/_sim/health", timeout=30)


def test_missing_secret_refuses_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "M365SIM_CLIENT_SECRET"}
    result = subprocess.run(
        [sys.executable, "-m", "m365sim", "--port", "0", "--state-dir", str(tmp_path), "--client-id",
         str(uuid.uuid4()), "--redirect-uri", "http://127.0.0.1:9/cb"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "M365SIM_CLIENT_SECRET" in result.stderr


def test_unknown_or_malformed_knobs_change_nothing(sim: Sim, tenant: dict[str, Any]) -> None:
    before = sim.control("GET", f"tenants/{tenant['id']}").json()["knobs"]
    for bad in ({"nope": 1}, {"throttle_rate": 2}, {"latency_ms": 10, "denied_mailboxes": "x"}):
        assert sim.control("PATCH", f"tenants/{tenant['id']}/knobs", json=bad).status_code == 400
    assert sim.control("GET", f"tenants/{tenant['id']}").json()["knobs"] == before


def test_generated_tenant_is_reachable_by_domain_and_reset_forgets_it(sim: Sim, new_tenant: Any) -> None:
    created = new_tenant(rooms=3)
    summary = sim.control("GET", f"tenants/{created['domain']}").json()
    assert summary["id"] == created["id"] and summary["consented"] is True
    assert created["rooms"] == [f"room-{i:05d}@{created['domain']}" for i in range(3)]
    assert sim.control("POST", "reset").status_code == 200
    assert sim.control("GET", f"tenants/{created['id']}").status_code == 404
    assert sim.control("GET", "tenants/contoso.onmicrosoft.com").json()["consented"] is False


def test_generator_is_deterministic_apart_from_the_id() -> None:
    first = generate_tenant_spec(450, domain="bench.onmicrosoft.com", tenant_id=str(uuid.UUID(int=1)))
    second = generate_tenant_spec(450, domain="bench.onmicrosoft.com", tenant_id=str(uuid.UUID(int=1)))
    assert first == second
    assert len(first["rooms"]) == 450
    assert len(first["roomLists"]) == 3
    assert {r["roomList"] for r in first["rooms"]} == {rl["emailAddress"] for rl in first["roomLists"]}
    assert first["rooms"][42]["emailAddress"] == "room-00042@bench.onmicrosoft.com"


def test_admin_consent_of_a_fixture_tenant_survives_a_restart_and_reset_clears_it(tmp_path: Path) -> None:
    contoso = "6f1c2a4e-8b3d-4e5f-9a7b-0c1d2e3f4a5b"
    first = start_sim(tmp_path, str(uuid.uuid4()), "s3cret-a", "http://127.0.0.1:9/cb")
    try:
        assert first.control("POST", f"tenants/{contoso}/consent", json={"granted": True}).status_code == 200
    finally:
        assert stop_sim(first) == 0
    second = start_sim(tmp_path, str(uuid.uuid4()), "s3cret-a", "http://127.0.0.1:9/cb")
    try:
        assert second.control("GET", f"tenants/{contoso}").json()["consented"] is True
        second.control("POST", "reset")
        assert second.control("GET", f"tenants/{contoso}").json()["consented"] is False
    finally:
        assert stop_sim(second) == 0
