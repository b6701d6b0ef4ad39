"""The local system's lifecycle: ports free again right after a stop, devhost restarted when it dies, nothing left.

`make run` after Ctrl-C and back-to-back `make test` runs rely on the first; background work
resuming after a host crash (as on the platform) relies on the second.
"""

from __future__ import annotations

import socket
import sys
import uuid
from pathlib import Path

import psutil
import requests
from azure.storage.blob import BlobServiceClient

from devhost.processes import Process, Supervisor
from devhost.stack import FIXED_PORTS, Stack, free_port, port_is_free, sim_available
from tests.conftest import SAMPLE_ENV
from tests.helpers import wait_until


def test_a_port_left_in_time_wait_is_free_and_a_listening_one_is_not() -> None:
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        assert not port_is_free(port)
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        accepted.close()  # the server side closes first, so it is the side left in TIME-WAIT
        assert client.recv(1) == b""
        client.close()
    assert port_is_free(port)


def test_a_killed_devhost_is_started_again_and_storage_keeps_running_with_its_data(sample_stack: Stack) -> None:
    container = BlobServiceClient.from_connection_string(sample_stack.storage_connection_string).get_container_client(
        "sample-invocations")
    if not container.exists():
        container.create_container()
    name = f"before-crash-{uuid.uuid4().hex}"
    container.upload_blob(name, b"kept")
    azurite = sample_stack.process("azurite")
    assert azurite is not None
    restarts = sample_stack.devhost_restarts

    killed = sample_stack.kill_devhost()
    assert sample_stack.exited() is None  # `make run` carries on: devhost is supervised
    sample_stack.wait_for_devhost()

    devhost = sample_stack.process("devhost")
    assert devhost is not None and devhost.popen.pid != killed
    assert sample_stack.devhost_restarts == restarts + 1
    assert sample_stack.process("azurite") is azurite and azurite.running
    assert container.download_blob(name).readall() == b"kept"
    assert requests.get(sample_stack.base_url + "/api/health", timeout=30).text == "ok"
    log = sample_stack.devhost_log
    assert log is not None and "devhost exited with code -9; starting it again" in log.read_text()


def test_every_server_listens_again_right_after_a_stop_and_none_is_left_behind() -> None:
    with_sim = sim_available()
    ports = {name: free_port() for name in FIXED_PORTS if with_sim or name != "sim"}
    options = {"in_memory": True, "with_sim": with_sim, "app": "tests.sample_app.function_app:app",
               "extra_env": SAMPLE_ENV, "ports": ports}
    sessions: list[requests.Session] = []
    with Stack.start(**options) as first:  # type: ignore[arg-type]
        first.kill_devhost()
        first.wait_for_devhost()
        family = [psutil.Process(p.popen.pid) for p in first.processes]
        family += [child for parent in family for child in parent.children(recursive=True)]
        # Connections still open when the servers stop leave their ports with sockets in
        # FIN-WAIT and then TIME-WAIT, as a browser or an SDK client does.
        for name in ("blob", "queue", "table", "devhost"):
            session = requests.Session()
            session.get(f"http://127.0.0.1:{ports[name]}/", timeout=30)
            sessions.append(session)
        if with_sim:
            session = requests.Session()
            session.get(f"{first.sim_url}/_sim/health", verify=first.ca_bundle, timeout=30)
            sessions.append(session)
    gone, alive = psutil.wait_procs(family, timeout=10)
    assert alive == []
    for session in sessions:
        session.close()
    assert all(port_is_free(port) for port in ports.values()), ports

    with Stack.start(**options) as second:  # type: ignore[arg-type]
        assert requests.get(second.base_url + "/api/health", timeout=30).text == "ok"


def sleeper(tmp_path: Path) -> Process:
    return Process.spawn("sleeper", [sys.executable, "-c", "import time; time.sleep(600)"], {}, tmp_path / "log",
                         tmp_path)


def test_supervisor_restarts_with_growing_back_off_and_stop_leaves_nothing(tmp_path: Path) -> None:
    supervisor = Supervisor(sleeper(tmp_path), first_delay=0.05, max_delay=0.2)
    supervisor.start()
    pids = []
    try:
        for restarts in (1, 2, 3, 4):
            pids.append(supervisor.kill())
            wait_until(lambda restarts=restarts: supervisor.restarts == restarts and supervisor.process.running,
                       timeout=30)
        supervisor.replace()  # on purpose: not a restart after a crash
        assert supervisor.restarts == 4
        current = supervisor.process.popen.pid
    finally:
        supervisor.stop()
    assert not psutil.pid_exists(current) or psutil.Process(current).status() == psutil.STATUS_ZOMBIE
    notes = (tmp_path / "log").read_text()
    assert [f"starting it again in {delay}s" in notes for delay in ("0.05", "0.1", "0.2")] == [True, True, True]
    assert "in 0.4s" not in notes  # capped at max_delay
    assert len(set(pids)) == 4


def test_supervisor_stopped_during_its_back_off_starts_nothing(tmp_path: Path) -> None:
    supervisor = Supervisor(sleeper(tmp_path), first_delay=30)
    supervisor.start()
    supervisor.kill()
    wait_until(lambda: "starting it again in 30s" in (tmp_path / "log").read_text(), timeout=30)
    supervisor.stop()
    assert supervisor.restarts == 0 and not supervisor.process.running
