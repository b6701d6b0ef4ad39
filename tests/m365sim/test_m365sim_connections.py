"""How m365sim uses connections and runs work at once, as Graph does: HTTP/1.1 keep-alive over
TLS (one connection for many requests), many requests in flight, `$batch` items up to 4 at a
time within the per-mailbox limit, and validation handshakes over pooled connections.

Overlap is judged from the simulator's request log (`monotonic` on arrival, `answered` when
answered), never from the test's own clock.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import requests
from conftest import Sim, Webhook
from test_m365sim_subscriptions import _create


def _new_connections(session: requests.Session, url: str) -> int:
    """How many connections urllib3 opened for `url`'s host in this session."""
    manager = session.get_adapter(url).poolmanager
    return sum(manager.pools[key].num_connections for key in manager.pools.keys())


def _log(sim: Sim, tenant_id: str, kind: str) -> list[dict[str, Any]]:
    entries = sim.control("GET", "requests", params={"tenant": tenant_id}).json()["value"]
    return [e for e in entries if e["kind"] == kind]


def _most_in_flight(entries: list[dict[str, Any]]) -> int:
    """The largest number of logged requests in flight at one instant (an answer at the same
    instant as an arrival counts as before it)."""
    assert all(e["answered"] is not None for e in entries), entries
    events = sorted([(e["monotonic"], 1) for e in entries] + [(e["answered"], -1) for e in entries])
    most = current = 0
    for _, change in events:
        current += change
        most = max(most, current)
    return most


def test_a_session_reuses_one_connection(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    url = f"{sim.base}/v1.0/users/{tenant['rooms'][0]}"
    with sim.session() as session:
        for _ in range(5):
            response = session.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
            assert response.status_code == 200, response.text
            assert response.headers.get("Connection", "").lower() != "close"
        session.post(f"{sim.base}/v1.0/$batch", headers={"Authorization": f"Bearer {token}"}, timeout=30,
                     json={"requests": [{"id": "1", "method": "GET", "url": "/users"}]}).raise_for_status()
        assert _new_connections(session, url) == 1


def test_many_kept_alive_connections_are_served_at_once(sim: Sim, new_tenant: Any) -> None:
    clients = 40
    tenant = new_tenant(rooms=clients)
    token = sim.token(tenant["id"])
    sessions = [sim.session() for _ in range(clients)]
    try:
        # Each client connects first (TLS handshake done), then all ask Graph together.
        for session in sessions:
            assert session.get(f"{sim.base}/_sim/health", timeout=30).status_code == 200
        sim.knobs(tenant["id"], latency_ms=1500)
        barrier = threading.Barrier(clients)
        statuses: list[int] = []
        lock = threading.Lock()

        def call(session: requests.Session, mailbox: str) -> None:
            barrier.wait(timeout=60)
            status = session.get(f"{sim.base}/v1.0/users/{mailbox}/calendar", timeout=60,
                                 headers={"Authorization": f"Bearer {token}"}).status_code
            with lock:
                statuses.append(status)

        threads = [threading.Thread(target=call, args=(s, room)) for s, room in zip(sessions, tenant["rooms"],
                                                                                     strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert statuses == [200] * clients
        assert all(_new_connections(s, sim.base) == 1 for s in sessions)
    finally:
        for session in sessions:
            session.close()
    # The connector keeps ~30 requests in flight; the server must not queue them behind each other.
    assert _most_in_flight(_log(sim, tenant["id"], "graph")) >= 30


def test_batch_runs_four_items_at_a_time_and_answers_in_request_order(sim: Sim, new_tenant: Any) -> None:
    tenant = new_tenant(rooms=8)
    token = sim.token(tenant["id"])
    sim.knobs(tenant["id"], latency_ms=500)
    items = [{"id": f"r{i}", "method": "GET", "url": f"/users/{room}/calendar"}
             for i, room in enumerate(reversed(tenant["rooms"]))]
    response = sim.graph("POST", "$batch", token, json={"requests": items})
    assert response.status_code == 200, response.text
    assert [(r["id"], r["status"]) for r in response.json()["responses"]] == [(f"r{i}", 200) for i in range(8)]
    assert _most_in_flight(_log(sim, tenant["id"], "graph-batch-item")) == 4


def test_four_batch_items_overlap_instead_of_running_one_after_another(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    sim.knobs(tenant["id"], latency_ms=500)
    items = [{"id": str(i), "method": "GET", "url": f"/users/{room}"} for i, room in enumerate(tenant["rooms"][:4])]
    response = sim.graph("POST", "$batch", token, json={"requests": items})
    assert [r["status"] for r in response.json()["responses"]] == [200] * 4
    logged = _log(sim, tenant["id"], "graph-batch-item")
    assert len(logged) == 4
    # Every item arrived before any was answered: the batch took about one latency, not four.
    assert max(e["monotonic"] for e in logged) < min(e["answered"] for e in logged)


def test_batch_items_for_one_mailbox_stay_within_its_concurrency_limit(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    sim.knobs(tenant["id"], latency_ms=300)
    mailbox = tenant["rooms"][0]
    items = [{"id": str(i), "method": "GET", "url": f"/users/{mailbox}/events"} for i in range(8)]
    response = sim.graph("POST", "$batch", token, json={"requests": items})
    assert [r["status"] for r in response.json()["responses"]] == [200] * 8
    assert _most_in_flight(_log(sim, tenant["id"], "graph-batch-item")) == 4


def test_validation_handshakes_reuse_a_connection(sim: Sim, tenant: dict[str, Any], webhook: Webhook) -> None:
    token = sim.token(tenant["id"])
    for room in tenant["rooms"][:3]:
        response = _create(sim, token, room, webhook, clientState=str(uuid.uuid4()))
        assert response.status_code == 201, response.text
    assert len(webhook.validations) == 6
    # Six handshakes, one after another, over one kept-alive connection to the subscriber.
    assert len(set(webhook.client_ports)) == 1, webhook.client_ports
