"""The whole local system: Azurite, m365sim (when present) and devhost, started and stopped together.

Owns the order things start in, ports, readiness checks, the product settings handed to
devhost, and devhost's supervision: when the Functions host dies (a crash, kill -9) it is
started again with back-off while storage and the simulator keep running, as the platform
restarts a host (see `devhost.processes`). Used by `make run` (`python -m devhost.stack`) and
by the tests (`Stack.start(...)`; `kill_devhost()` and `wait_for_devhost()` for crash tests).
It never leaves a process behind: every one it starts is stopped on exit, also when start-up fails.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import secrets
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from devhost.functions import configure_logging
from devhost.processes import Process, Supervisor

ROOT = Path(__file__).resolve().parent.parent
AZURITE = ROOT / "node_modules" / ".bin" / "azurite"
DEV_CLIENT_ID = "3f0c2d9a-5b7e-4c1a-9d2f-8e6b4a1c0d57"
# Azurite's well-known development account key (public, documented by Microsoft; not a secret).
# https://learn.microsoft.com/azure/storage/common/storage-use-azurite#connection-strings
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="  # noqa: S105
FIXED_PORTS = {"blob": 10000, "queue": 10001, "table": 10002, "sim": 7443, "devhost": 7071}


class StackError(RuntimeError):
    """The local system could not start; the message says which part and why."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:`port` now.

    SO_REUSEADDR, as every server the stack starts sets it (Node's libuv, werkzeug's and cheroot's
    servers): the TIME-WAIT connections a stopped server leaves for a minute don't stop a new
    listener, while a socket that is listening still makes the bind fail."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen(1)
        except OSError:
            return False
        return True


def azurite_connection_string(blob_port: int, queue_port: int, table_port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{blob_port}/{AZURITE_ACCOUNT};"
        f"QueueEndpoint=http://127.0.0.1:{queue_port}/{AZURITE_ACCOUNT};"
        f"TableEndpoint=http://127.0.0.1:{table_port}/{AZURITE_ACCOUNT};"
    )


def sim_available() -> bool:
    return (ROOT / "m365sim" / "__main__.py").is_file()


def read_local_settings(path: Path) -> dict[str, str]:
    """`Values` of a Functions `local.settings.json`; empty values mean "use the default"."""
    if not path.is_file():
        return {}
    values = json.loads(path.read_text(encoding="utf-8")).get("Values") or {}
    return {str(name): str(value) for name, value in values.items() if value not in (None, "")}


@dataclass
class Stack:
    base_url: str
    storage_connection_string: str
    env: dict[str, str]
    sim_url: str | None = None
    ca_bundle: str | None = None
    work_dir: Path | None = None
    _children: list[Process] = field(default_factory=list, repr=False)  # Azurite, m365sim
    _devhost: Supervisor | None = field(default=None, repr=False)
    _supervising: bool = field(default=False, repr=False)
    _temporary: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def processes(self) -> list[Process]:
        """The processes running now, in start order (devhost's current one after a restart)."""
        return [*self._children, *([self._devhost.process] if self._devhost is not None else [])]

    @property
    def devhost_log(self) -> Path | None:
        return next((p.log_path for p in self.processes if p.name == "devhost"), None)

    @property
    def devhost_restarts(self) -> int:
        """How many times the supervisor has started devhost again after it died."""
        return self._devhost.restarts if self._devhost is not None else 0

    def process(self, name: str) -> Process | None:
        return next((p for p in self.processes if p.name == name), None)

    def exited(self) -> Process | None:
        """A process that has ended and that nothing will start again (the stack cannot go on without it)."""
        unsupervised = [*self._children, *([] if self._supervising or self._devhost is None
                                           else [self._devhost.process])]
        return next((p for p in unsupervised if not p.running), None)

    def stop(self) -> None:
        # devhost first (its supervision ends before it does), so it doesn't log storage errors
        # while Azurite goes away.
        if self._devhost is not None:
            self._devhost.stop()
            self._devhost = None
        for process in reversed(self._children):
            process.stop()
        self._children.clear()
        if self._temporary is not None:
            self._temporary.cleanup()
            self._temporary = None

    @classmethod
    @contextlib.contextmanager
    def start(cls, *, in_memory: bool = True, free_ports: bool = True, with_sim: bool | None = None,
              app: str = "function_app:app", extra_env: Mapping[str, str] | None = None,
              ready_path: str = "/api/health", log_to_files: bool = True, supervise: bool = True,
              ports: Mapping[str, int] | None = None) -> Iterator[Stack]:
        stack = cls.launch(in_memory=in_memory, free_ports=free_ports, with_sim=with_sim, app=app,
                           extra_env=extra_env, ready_path=ready_path, log_to_files=log_to_files,
                           supervise=supervise, ports=ports)
        try:
            yield stack
        finally:
            stack.stop()

    @classmethod
    def launch(cls, *, in_memory: bool = True, free_ports: bool = True, with_sim: bool | None = None,
               app: str = "function_app:app", extra_env: Mapping[str, str] | None = None,
               ready_path: str = "/api/health", log_to_files: bool = True,
               local_settings: Path | None = None, supervise: bool = True,
               ports: Mapping[str, int] | None = None) -> Stack:
        """Start everything and return once devhost answers `ready_path`; on failure nothing is left running.

        Ports: the fixed ones (`free_ports=False`, as `make run`), or ones the kernel picks, or
        those named in `ports` (e.g. a test starting a stack again where the last one ran).
        `supervise`: start devhost again whenever it dies (see `devhost.processes.Supervisor`)."""
        with_sim = sim_available() if with_sim is None else with_sim
        if with_sim and not sim_available():
            raise StackError("with_sim=True, but the m365sim package is not there (m365sim/__main__.py)")
        temporary = tempfile.TemporaryDirectory(prefix="rcc-stack-") if in_memory else None
        work_dir = Path(temporary.name) if temporary is not None else ROOT
        if ports is not None:
            checked = set(ports)
            ports = {**{name: free_port() for name in FIXED_PORTS}, **ports}
        elif free_ports:
            checked, ports = set(), {name: free_port() for name in FIXED_PORTS}
        else:
            checked, ports = set(FIXED_PORTS), dict(FIXED_PORTS)
        if checked:
            wanted = [name for name in FIXED_PORTS if name in checked and (with_sim or name != "sim")]
            busy = [f"{ports[name]} ({name})" for name in wanted if not port_is_free(ports[name])]
            if busy:
                raise StackError(f"{'ports' if len(busy) > 1 else 'port'} {', '.join(busy)} "
                                 f"{'are' if len(busy) > 1 else 'is'} already in use: stop whatever listens there "
                                 "(another `make run`?) and try again")
        connection = azurite_connection_string(ports["blob"], ports["queue"], ports["table"])
        base_url = f"http://127.0.0.1:{ports['devhost']}"
        stack = cls(base_url=base_url, storage_connection_string=connection, env={}, work_dir=work_dir,
                    _temporary=temporary)
        logs = work_dir / "logs" if log_to_files else None
        if logs is not None:
            logs.mkdir(parents=True, exist_ok=True)
        try:
            azurite_args = [str(AZURITE), "--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose",
                            "--blobHost", "127.0.0.1", "--queueHost", "127.0.0.1", "--tableHost", "127.0.0.1",
                            "--blobPort", str(ports["blob"]), "--queuePort", str(ports["queue"]),
                            "--tablePort", str(ports["table"])]
            if in_memory:
                azurite_args.append("--inMemoryPersistence")
            else:
                (ROOT / ".azurite").mkdir(exist_ok=True)
                azurite_args += ["--location", str(ROOT / ".azurite")]
            azurite = stack._spawn("azurite", azurite_args, dict(os.environ), logs)
            for name in ("blob", "queue", "table"):
                _wait_for(lambda port=ports[name]: _accepts(port), azurite, f"Azurite's {name} port {ports[name]}")

            secret = secrets.token_urlsafe(32)
            env: dict[str, str] = {
                "AzureWebJobsStorage": connection,
                "DataStorage": connection,
                "ENTRA_CLIENT_ID": DEV_CLIENT_ID,
                "ENTRA_CLIENT_SECRET": secret,
                "STATE_SIGNING_KEY": secrets.token_urlsafe(48),
                "PUBLIC_BASE_URL": base_url,
                "CONNECT_SCHEDULE": "0 */15 * * * *",
                "SYNC_SWEEP_SCHEDULE": "0 5 * * * *",
                "UPLOADS_CONTAINER": "calendar-uploads",
            }
            if with_sim:
                state_dir = work_dir / ".m365sim" if in_memory else ROOT / ".m365sim"
                state_dir.mkdir(parents=True, exist_ok=True)
                sim_url = f"https://127.0.0.1:{ports['sim']}"
                ca_bundle = state_dir / "ca.pem"
                env.update({"LOGIN_BASE_URL": sim_url, "GRAPH_BASE_URL": f"{sim_url}/v1.0",
                            "CA_BUNDLE_PATH": str(ca_bundle)})
            if local_settings is not None:
                env.update(read_local_settings(local_settings))
            env.update(extra_env or {})
            stack.env = env

            if with_sim:
                sim_env = {**os.environ, "M365SIM_CLIENT_SECRET": env["ENTRA_CLIENT_SECRET"]}
                sim = stack._spawn("m365sim", [sys.executable, "-m", "m365sim", "--host", "127.0.0.1",
                                               "--port", str(ports["sim"]), "--state-dir", str(state_dir),
                                               "--client-id", env["ENTRA_CLIENT_ID"],
                                               "--redirect-uri", f"{env['PUBLIC_BASE_URL']}/api/consent/callback"],
                                   sim_env, logs)
                _wait_for(lambda: _https_ok(f"{sim_url}/_sim/health", ca_bundle), sim, "m365sim's /_sim/health")
                stack.sim_url = sim_url
                stack.ca_bundle = str(ca_bundle)

            data_dir = work_dir / ".devhost"
            devhost = stack._spawn("devhost", [sys.executable, "-m", "devhost", "--app", app,
                                               "--port", str(ports["devhost"]), "--web-dir", str(ROOT / "web"),
                                               "--data-dir", str(data_dir)],
                                   {**os.environ, **env, "PYTHONUNBUFFERED": "1"}, logs)
            _wait_for(lambda: _http_ok(f"{base_url}/admin/host/status"), devhost, "devhost")
            if ready_path:
                # Once per language worker process (devhost gives equally idle workers their turn), so
                # nothing that follows meets a worker that has not yet built what its first call builds.
                for _ in range(stack.worker_processes()):
                    _wait_for(lambda: _http_ok(base_url + ready_path), devhost, f"devhost's {ready_path}")
        except BaseException:
            stack.stop()
            raise
        if supervise and stack._devhost is not None:
            stack._supervising = True
            stack._devhost.start()
        return stack

    def _spawn(self, name: str, args: list[str], env: dict[str, str], logs: Path | None) -> Process:
        process = Process.spawn(name, args, env, logs / f"{name}.log" if logs is not None else None, ROOT)
        if name == "devhost":
            self._devhost = Supervisor(process)
        else:
            self._children.append(process)
        return process

    def _devhost_supervisor(self) -> Supervisor:
        if self._devhost is None:
            raise StackError("devhost is not running")
        return self._devhost

    def restart_devhost(self) -> None:
        """Stop devhost and start it again with the same settings (tests of restart behaviour)."""
        new = self._devhost_supervisor().replace()
        _wait_for(lambda: _http_ok(f"{self.base_url}/admin/host/status"), new, "devhost")

    def worker_processes(self) -> int:
        """How many language worker processes devhost runs the app in (1: its own process)."""
        try:
            return max(1, len(requests.get(f"{self.base_url}/admin/host/status", timeout=10).json()["workerProcesses"]))
        except (requests.RequestException, ValueError, KeyError, TypeError):
            return 1

    def kill_devhost(self) -> int:
        """kill -9 devhost, as a crash would end it, and return its pid; the supervision starts it
        again (with `supervise=True`): `wait_for_devhost()` returns once the new one answers."""
        return self._devhost_supervisor().kill()

    def wait_for_devhost(self, timeout: float = 60.0) -> None:
        """Until a running devhost answers `/admin/host/status` (after `kill_devhost()`: the restarted one)."""
        supervisor = self._devhost_supervisor()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = supervisor.process
            if process.running and _http_ok(f"{self.base_url}/admin/host/status") and supervisor.process is process:
                return
            time.sleep(0.2)
        raise StackError(f"devhost was not back after {timeout:.0f}s\n{supervisor.process.log_tail()}")


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _https_ok(url: str, ca_bundle: Path) -> bool:
    if not ca_bundle.is_file():
        return False
    try:
        return requests.get(url, timeout=2, verify=str(ca_bundle)).status_code == 200
    except (requests.RequestException, OSError):
        return False


def _wait_for(check: Callable[[], bool], process: Process, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise StackError(f"{process.name} exited with code {process.popen.returncode} before {what} was "
                             f"ready\n{process.log_tail()}")
        if check():
            return
        time.sleep(0.2)
    raise StackError(f"{what} was not ready after {timeout:.0f}s\n{process.log_tail()}")


def _seed_demo(stack: Stack) -> None:
    if importlib.util.find_spec("devhost.demo") is None:
        print("No devhost/demo.py yet: nothing to seed.")
        return
    from devhost import demo  # type: ignore[attr-defined]

    demo.seed(stack.base_url, stack.env)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devhost.stack",
                                     description="Start Azurite, m365sim and devhost on fixed ports until Ctrl-C.")
    parser.add_argument("--demo-seed", action="store_true", help="load demo data (devhost/demo.py) after start")
    arguments = parser.parse_args(argv)
    configure_logging(sys.stderr)
    if not AZURITE.exists():
        print(f"{AZURITE} is missing: run `make setup` first.", file=sys.stderr)
        return 2
    try:
        stack = Stack.launch(in_memory=False, free_ports=False, log_to_files=False,
                             local_settings=ROOT / "local.settings.json")
    except StackError as error:
        print(f"Cannot start the local system: {error}", file=sys.stderr)
        return 1
    stopping = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        if arguments.demo_seed:
            _seed_demo(stack)
        print(f"\nAdmin page:   {stack.base_url}/\nDev sign-in:  {stack.base_url}/.auth/login/dev\n"
              f"Simulator:    {stack.sim_url or 'not started (no m365sim package)'}\n"
              f"Storage:      Azurite on 127.0.0.1:10000-10002 (data in .azurite/)\n"
              "Press Ctrl-C to stop.\n", flush=True)
        # devhost is supervised: when it dies it is started again, and this loop goes on.
        while not stopping.wait(1.0):
            dead = stack.exited()
            if dead is not None:
                print(f"{dead.name} exited with code {dead.popen.returncode}; stopping.", file=sys.stderr)
                return 1
        return 0
    finally:
        print("Stopping…", flush=True)
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
