"""Language worker processes: `FUNCTIONS_WORKER_PROCESS_COUNT`, as the Functions host starts them.

Owns running invocations in worker processes. The real host runs a Python app in one language
worker process by default, and in up to 10 with FUNCTIONS_WORKER_PROCESS_COUNT, spreading the
invocations evenly over them; each worker runs a sync function on a thread of its own. devhost
does the same when the setting is above 1: it spawns that many processes at once (the host adds
one every 10 s), each imports the app as the worker indexes it, and each invocation goes to the
worker with the fewest running, in turn when several are as idle. HTTP, the
triggers' polling, leases, receipts and timer status stay in devhost's own process, as they stay
in the host. A trigger value crosses by pickle (an HTTP request as its parts; a blob stream as
the blob's address, opened again in the worker). A worker that dies fails what it was running
(each trigger then does what it does on a failure) and is started again. Absent or 1, functions
run in devhost's own process, as they always have. It never decides when a function runs.
https://learn.microsoft.com/azure/azure-functions/python-scale-performance-reference#use-multiple-language-worker-processes
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import threading
import time
import traceback
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import azure.functions as func

from devhost.functions import (
    FunctionSpec,
    Reply,
    StartupError,
    call_user_function,
    configure_logging,
    load_app,
    read_functions,
)

log = logging.getLogger("devhost")

SETTING = "FUNCTIONS_WORKER_PROCESS_COUNT"
MAX_PROCESSES = 10  # the host's own limit for the setting
READY_SECONDS = 60.0
# A worker that dies this soon after it started is started again only after this pause.
RESTART_PAUSE_SECONDS = 1.0


def process_count(environ: Mapping[str, str]) -> int:
    """The setting's value (1 when absent); anything but a whole number from 1 to 10 stops the host."""
    text = str(environ.get(SETTING) or "1").strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_PROCESSES:
        raise StartupError(f"{SETTING}={text!r}: expected a whole number from 1 to {MAX_PROCESSES}")
    return int(text)


@dataclass(frozen=True)
class _HttpRequestParts:
    """A `func.HttpRequest` as it crosses to a worker (the class itself does not pickle)."""

    method: str
    url: str
    headers: dict[str, str]
    params: dict[str, str]
    route_params: dict[str, str]
    body: bytes

    def rebuilt(self) -> func.HttpRequest:
        return func.HttpRequest(method=self.method, url=self.url, headers=self.headers, params=self.params,
                                route_params=self.route_params, body=self.body)


def _portable(value: Any) -> Any:
    if isinstance(value, func.HttpRequest):
        return _HttpRequestParts(value.method, value.url, dict(value.headers), dict(value.params),
                                 dict(value.route_params), value.get_body())
    return value


def _restored(value: Any) -> Any:
    return value.rebuilt() if isinstance(value, _HttpRequestParts) else value


# --- devhost's side ---------------------------------------------------------------------------


class _Worker:
    """One worker process and the invocations it is running."""

    def __init__(self, index: int, app_spec: str, on_exit: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self.index = index
        self.connection, child = context.Pipe()
        self.process = context.Process(target=serve, args=(child, app_spec), name=f"devhost-worker-{index}",
                                       daemon=True)
        self.process.start()
        child.close()
        self.started = time.monotonic()
        self.pending: dict[str, Future[Reply]] = {}
        self.gone = False
        self._lock = threading.Lock()
        self._on_exit = on_exit
        self._ready = threading.Event()
        self._failure = ""
        threading.Thread(target=self._read, name=f"worker-{index}-replies", daemon=True).start()

    def wait_ready(self) -> None:
        if not self._ready.wait(READY_SECONDS) or self._failure:
            raise StartupError(f"worker process {self.index} did not start: {self._failure or 'no answer in time'}")

    def submit(self, invocation_id: str, function_name: str, value: Any) -> Future[Reply]:
        data = pickle.dumps((invocation_id, function_name, pickle.dumps(_portable(value))))
        future: Future[Reply] = Future()
        with self._lock:
            if self.gone:
                future.set_result(Reply(False, error="the worker process exited"))
                return future
            self.pending[invocation_id] = future
            self.connection.send_bytes(data)
        return future

    def _read(self) -> None:
        while True:
            try:
                invocation_id, payload = pickle.loads(self.connection.recv_bytes())  # noqa: S301 - its own child
            except (EOFError, OSError):
                break
            try:
                reply = pickle.loads(payload)  # noqa: S301 - its own child
            except Exception as error:  # noqa: BLE001 - an answer this process cannot read fails its invocation
                reply = Reply(False, error=f"the worker's answer cannot be read by devhost: {type(error).__name__}: "
                                           f"{error}")
            if invocation_id is None:  # the worker's first word: ready, or why it cannot start
                self._failure = reply.error
                self._ready.set()
                continue
            with self._lock:
                future = self.pending.pop(invocation_id, None)
            if future is not None:
                future.set_result(reply)
        self.process.join(5)
        with self._lock:
            self.gone = True
            running, self.pending = self.pending, {}
        self._failure = self._failure or f"exit code {self.process.exitcode}"
        self._ready.set()
        for future in running.values():
            future.set_result(Reply(False, error=f"the worker process exited (exit code {self.process.exitcode}) "
                                                 "while this invocation ran"))
        self._on_exit(self)

    def stop(self) -> None:
        with self._lock:
            self.gone = True
        self.connection.close()
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()


class WorkerPool:
    """`count` worker processes; `submit` sends an invocation to the least busy one (in turn, when
    several are as busy)."""

    def __init__(self, app_spec: str, count: int) -> None:
        self.app_spec = app_spec
        self._lock = threading.Lock()
        self._closed = False
        self._turn = 0  # of workers equally busy, the next in turn takes it
        self._workers = [_Worker(index, app_spec, self._exited) for index in range(count)]
        for worker in self._workers:
            worker.wait_ready()
        log.info("%d language worker processes (%s): %s", count, SETTING,
                 ", ".join(str(worker.process.pid) for worker in self._workers))

    def submit(self, invocation_id: str, function_name: str, value: Any) -> Future[Reply]:
        with self._lock:
            count = len(self._workers)
            self._turn = (self._turn + 1) % count
            worker = min((w for w in self._workers if not w.gone),
                         key=lambda w: (len(w.pending), (w.index - self._turn) % count), default=self._workers[0])
        return worker.submit(invocation_id, function_name, value)

    def pids(self) -> list[int]:
        with self._lock:
            return [worker.process.pid or 0 for worker in self._workers]

    def _exited(self, worker: _Worker) -> None:
        if self._closed:
            return
        log.error("worker process %d (pid %s) exited with code %s; starting it again", worker.index,
                  worker.process.pid, worker.process.exitcode)
        if time.monotonic() - worker.started < RESTART_PAUSE_SECONDS * 5:
            time.sleep(RESTART_PAUSE_SECONDS)
        replacement = _Worker(worker.index, self.app_spec, self._exited)
        with self._lock:
            if self._closed:
                replacement.stop()
                return
            self._workers[worker.index] = replacement

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers = list(self._workers)
        for worker in workers:
            worker.stop()


# --- the worker's side ------------------------------------------------------------------------


def serve(connection: Connection, app_spec: str) -> None:
    """A worker process: import the app, then run each invocation sent on a thread of its own, until
    devhost closes the pipe (or dies): then the process ends at once, as a killed worker does."""
    configure_logging()
    sending = threading.Lock()

    def send(invocation_id: str | None, reply: Reply) -> None:
        try:
            payload = pickle.dumps(reply)
        except Exception as error:  # noqa: BLE001 - an unpicklable return value fails its invocation
            payload = pickle.dumps(Reply(False, error=f"the function's return value cannot be sent to the host: "
                                                      f"{type(error).__name__}: {error}"))
        data = pickle.dumps((invocation_id, payload))
        with sending:
            connection.send_bytes(data)

    try:
        app, directory = load_app(app_spec)
        functions: dict[str, FunctionSpec] = {spec.name: spec for spec in read_functions(app, directory, os.environ)}
    except Exception as error:  # noqa: BLE001 - devhost says why and stops
        send(None, Reply(False, error=f"{type(error).__name__}: {error}"))
        return
    send(None, Reply(True))

    def run(invocation_id: str, function_name: str, payload: bytes) -> None:
        try:
            value = _restored(pickle.loads(payload))  # noqa: S301 - from devhost
            reply = call_user_function(functions[function_name], value, invocation_id)
        except Exception as error:  # noqa: BLE001 - a value that cannot be read here fails this invocation only
            reply = Reply(False, error=f"{type(error).__name__}: {error}", trace=traceback.format_exc())
        send(invocation_id, reply)

    while True:
        try:
            invocation_id, function_name, payload = pickle.loads(connection.recv_bytes())  # noqa: S301 - from devhost
        except (EOFError, OSError):
            os._exit(0)  # devhost is gone: so is everything this worker was running
        threading.Thread(target=run, args=(invocation_id, function_name, payload),
                         name=f"invoke-{function_name}-{invocation_id[:8]}", daemon=True).start()
