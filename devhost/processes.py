"""Child processes of the local system, and keeping the Functions host running as the platform does.

Owns `Process` (one child in a process group of its own: start, SIGTERM then SIGKILL, the tail
of its log) and `Supervisor`, which starts a process again when it dies on its own, the way
Azure restarts a crashed host: after 0.5 s, doubling up to 30 s while it keeps dying, back to
0.5 s once it has run for a minute; every exit and restart is logged (and noted in the
process's log file). `devhost.stack` supervises devhost with it.
It never restarts a process stopped on purpose, and never leaves one behind: `Supervisor.stop()`
ends the watching before it stops the process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

log = logging.getLogger("devhost.stack")

STOP_GRACE_SECONDS = 5.0


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path | None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    started_at: float = field(default_factory=time.monotonic)

    @classmethod
    def spawn(cls, name: str, args: list[str], env: dict[str, str], log_path: Path | None, cwd: Path) -> Process:
        output: IO[bytes] | None = open(log_path, "ab") if log_path is not None else None  # noqa: SIM115
        try:
            # A process group of its own: stopping it stops its children too, and a Ctrl-C in the
            # terminal reaches only the supervisor, which then stops everything in order.
            popen = subprocess.Popen(args, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            if output is not None:
                output.close()
        return cls(name, popen, log_path, list(args), dict(env), cwd)

    def respawn(self) -> Process:
        """The same command, environment and log file, started again."""
        return Process.spawn(self.name, self.args, self.env, self.log_path, self.cwd or Path.cwd())

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def note(self, text: str) -> None:
        """A line in this process's log file (when it has one) from the supervisor, not the process."""
        if self.log_path is not None:
            with open(self.log_path, "a", encoding="utf-8") as handle:
                handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} [stack] {text}\n")

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self._kill_group()
            self.popen.wait()
        # Children that outlived their leader (none expected) share its process group.
        self._kill_group()

    def kill(self) -> None:
        """SIGKILL to the whole group, as a crash or the OOM killer would end it; returns once it is gone."""
        self._kill_group()
        self.popen.wait()

    def _kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)


class Supervisor:
    """Keeps one process running: when it exits on its own it is started again after a back-off."""

    def __init__(self, process: Process, *, first_delay: float = 0.5, max_delay: float = 30.0,
                 healthy_after: float = 60.0) -> None:
        self._process = process
        self.first_delay = first_delay
        self.max_delay = max_delay
        self.healthy_after = healthy_after
        self.restarts = 0
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def process(self) -> Process:
        with self._lock:
            return self._process

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name=f"supervise-{self._process.name}", daemon=True)
            self._thread.start()

    def replace(self) -> Process:
        """Stop the process on purpose and start it again at once (a deliberate restart, no back-off)."""
        with self._lock:
            self._process.stop()
            self._process = self._process.respawn()
            return self._process

    def kill(self) -> int:
        """SIGKILL the process, as a crash would; the watcher restarts it. Returns the killed pid."""
        with self._lock:
            process = self._process
            process.kill()
        return process.popen.pid

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            self._process.stop()

    def _watch(self) -> None:
        failures = 0
        while not self._stopping.wait(0.2):
            with self._lock:
                process = self._process
                code = process.popen.poll()
            if code is None:
                continue
            if time.monotonic() - process.started_at >= self.healthy_after:
                failures = 0
            delay = min(self.max_delay, self.first_delay * 2 ** failures)
            failures += 1
            message = f"{process.name} exited with code {code}; starting it again in {delay:g}s"
            log.warning(message)
            process.note(message)
            if self._stopping.wait(delay):
                return
            with self._lock:
                if self._stopping.is_set() or self._process is not process:
                    continue  # stopped, or restarted on purpose meanwhile
                self._process = process.respawn()
                self.restarts += 1
                message = f"{process.name} restarted (pid {self._process.popen.pid}, restart {self.restarts})"
            log.warning(message)
            process.note(message)
