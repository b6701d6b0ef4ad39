"""The app's functions as the Functions host sees them, and invoking one.

Owns importing `module:attribute`, reading each function's trigger and bindings
through the library's own metadata (`get_functions()`, `get_trigger()`,
`get_bindings()`, `get_user_function()`), resolving `%SETTING%` binding expressions
from the environment, and running one invocation with its log line. It never
decides when a function runs: the HTTP server, the timer scheduler and the blob
watcher do.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import azure.functions as func

if TYPE_CHECKING:
    from devhost.workers import WorkerPool

log = logging.getLogger("devhost")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(stream: Any = None) -> None:
    """The log lines of devhost, its worker processes and the stack: INFO, the SDKs' per-request
    lines and werkzeug's access log left out."""
    logging.basicConfig(level=logging.INFO, stream=stream or sys.stdout, format=LOG_FORMAT)
    logging.getLogger("azure").setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


SUPPORTED_TRIGGERS = {"httpTrigger": "http", "timerTrigger": "timer", "blobTrigger": "blob", "queueTrigger": "queue"}
_SETTING_EXPRESSION = re.compile(r"%([^%]+)%")
_TIMESPAN = re.compile(r"(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)")


class StartupError(Exception):
    """The app cannot be hosted as configured; the message says what to fix."""


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    kind: str  # "http" | "timer" | "blob" | "queue"
    trigger: dict[str, Any]  # the trigger binding with %SETTING% expressions resolved
    user_function: Callable[..., Any]
    directory: str

    @property
    def function_id(self) -> str:
        # The id the real host uses in receipts, timer status and poison messages.
        return f"Host.Functions.{self.name}"

    @property
    def trigger_parameter(self) -> str:
        return str(self.trigger["name"])

    @property
    def trigger_annotation(self) -> str | None:
        """"str" or "bytes" when the trigger parameter is annotated so (the worker then passes the
        payload as that type instead of the trigger's own class), else None."""
        annotation = inspect.signature(self.user_function).parameters[self.trigger_parameter].annotation
        if annotation in (bytes, "bytes"):
            return "bytes"
        if annotation in (str, "str"):
            return "str"
        return None


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    function_timeout_seconds: float | None = None
    # host.json `extensions.queues` as written; devhost.queues reads and checks it.
    queues: Mapping[str, Any] = field(default_factory=dict)
    path: str = "host.json"


def load_app(app_spec: str) -> tuple[func.FunctionApp, Path]:
    """Import `module:attribute` from the working directory, like the worker indexing the app."""
    module_name, _, attribute = app_spec.partition(":")
    if not module_name or not attribute:
        raise StartupError(f"--app {app_spec!r}: expected module:attribute, e.g. function_app:app")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    module = importlib.import_module(module_name)
    app = getattr(module, attribute, None)
    if app is None or not hasattr(app, "get_functions"):
        raise StartupError(f"--app {app_spec!r}: {attribute} is not a FunctionApp")
    return app, Path(module.__file__ or cwd).resolve().parent


def parse_timespan(value: Any, where: str) -> float:
    """Seconds of a .NET TimeSpan "[d.]hh:mm:ss[.fff]", the way host.json writes durations."""
    found = _TIMESPAN.fullmatch(str(value)) if isinstance(value, str) else None
    if found is None:
        raise StartupError(f"{where}: {value!r} is not a duration like hh:mm:ss")
    days, hours, minutes, secs = (float(part or 0) for part in found.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + secs


def read_host_json(app_directory: Path) -> HostConfig:
    """routePrefix, functionTimeout and the queues section from host.json next to the app (defaults when absent)."""
    path = app_directory / "host.json"
    if not path.is_file():
        return HostConfig(path=str(path))
    data = json.loads(path.read_text(encoding="utf-8"))
    extensions = data.get("extensions") or {}
    prefix = (extensions.get("http") or {}).get("routePrefix", "api")
    timeout = data.get("functionTimeout")
    seconds: float | None = None
    if timeout and timeout != "-1":
        seconds = parse_timespan(timeout, f"{path}: functionTimeout")
    queues = extensions.get("queues") or {}
    if not isinstance(queues, dict):
        raise StartupError(f"{path}: extensions.queues must be an object")
    return HostConfig(route_prefix=str(prefix).strip("/"), function_timeout_seconds=seconds, queues=queues,
                      path=str(path))


def is_disabled(name: str, environ: Mapping[str, str]) -> bool:
    """The app setting `AzureWebJobs.<name>.Disabled` (true or 1) turns a function off, as in the host:
    it is indexed but never triggered. https://learn.microsoft.com/azure/azure-functions/disable-function"""
    value = environ.get(f"AzureWebJobs.{name}.Disabled") or environ.get(f"AzureWebJobs__{name}__Disabled") or ""
    return value.strip().lower() in ("true", "1")


def resolve_expressions(value: Any, environ: Mapping[str, str], where: str) -> Any:
    """Replace `%NAME%` with the app setting NAME, as the host does for binding properties."""
    if not isinstance(value, str):
        return value

    def setting(found: re.Match[str]) -> str:
        name = found.group(1)
        resolved = environ.get(name)
        if resolved is None or resolved == "":
            raise StartupError(f"{where}: app setting {name!r} (from %{name}%) is not set")
        return resolved

    return _SETTING_EXPRESSION.sub(setting, value)


def read_functions(app: func.FunctionApp, app_directory: Path, environ: Mapping[str, str]) -> list[FunctionSpec]:
    specs: list[FunctionSpec] = []
    for function in app.get_functions():
        name = function.get_function_name()
        trigger = function.get_trigger()
        trigger_dict = dict(trigger.get_dict_repr())
        trigger_type = str(trigger_dict.get("type"))
        if trigger_type not in SUPPORTED_TRIGGERS:
            raise StartupError(f"function {name}: devhost does not run {trigger_type} triggers")
        for binding in function.get_bindings():
            binding_dict = binding.get_dict_repr()
            if binding_dict is trigger.get_dict_repr() or binding_dict.get("name") == trigger_dict.get("name"):
                continue
            if binding_dict.get("type") == "http" and binding_dict.get("name") == "$return":
                continue
            raise StartupError(
                f"function {name}: devhost does not support the {binding_dict.get('type')} binding "
                f"{binding_dict.get('name')!r}"
            )
        resolved = {
            key: resolve_expressions(value, environ, f"function {name}, binding property {key}")
            for key, value in trigger_dict.items()
        }
        resolved["type"] = trigger_type
        if "methods" in resolved and resolved["methods"]:
            resolved["methods"] = [getattr(m, "value", m) for m in resolved["methods"]]
        user_function = function.get_user_function()
        if resolved["name"] not in inspect.signature(user_function).parameters:
            raise StartupError(f"function {name}: its Python function has no parameter {resolved['name']!r}")
        specs.append(FunctionSpec(name, SUPPORTED_TRIGGERS[trigger_type], resolved, user_function,
                                  str(app_directory)))
    return specs


class InvocationContext(func.Context):
    """The `context` parameter a function may declare (azure.functions.Context)."""

    def __init__(self, invocation_id: str, function_name: str, function_directory: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._thread_local_storage = threading.local()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._thread_local_storage

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> Any:
        return None

    @property
    def retry_context(self) -> Any:
        return None


@dataclass
class Outcome:
    invocation_id: str
    succeeded: bool
    result: Any = None
    error: str | None = None
    duration_ms: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"outcome": "succeeded" if self.succeeded else "failed",
                                "invocationId": self.invocation_id}
        if self.error is not None:
            body["error"] = self.error
        return body


@dataclass(frozen=True)
class Reply:
    """How one invocation ended: its return value, or the error and its traceback."""

    succeeded: bool
    result: Any = None
    error: str = ""
    trace: str = ""


def call_user_function(spec: FunctionSpec, trigger_value: Any, invocation_id: str) -> Reply:
    """Call the function with its trigger value (and `context` when it asks for one), as the worker does."""
    parameters = inspect.signature(spec.user_function).parameters
    arguments: dict[str, Any] = {spec.trigger_parameter: trigger_value}
    if "context" in parameters and "context" != spec.trigger_parameter:
        arguments["context"] = InvocationContext(invocation_id, spec.name, spec.directory)
    try:
        result = spec.user_function(**arguments)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        return Reply(True, result=result)
    except BaseException as error:  # noqa: BLE001 - a function's failure is its outcome
        return Reply(False, error=f"{type(error).__name__}: {error}", trace=traceback.format_exc())


class Invoker:
    """Runs one invocation, bounded by host.json's functionTimeout: on a thread of devhost's own, or
    in a language worker process when there are several (`devhost.workers`)."""

    def __init__(self, timeout_seconds: float | None, workers: WorkerPool | None = None) -> None:
        self.timeout_seconds = timeout_seconds
        self.workers = workers

    def invoke(self, spec: FunctionSpec, trigger_value: Any, reason: str) -> Outcome:
        invocation_id = str(uuid.uuid4())
        started = time.monotonic()
        try:
            future = self._start(spec, trigger_value, invocation_id)
        except Exception as error:  # noqa: BLE001 - a value that cannot reach a worker fails its invocation
            future = Future()
            future.set_result(Reply(False, error=f"the trigger value cannot be sent to a worker process: "
                                                 f"{type(error).__name__}: {error}"))
        try:
            reply = future.result(self.timeout_seconds)
        except FutureTimeout:
            reply = None
        duration_ms = int((time.monotonic() - started) * 1000)
        if reply is None:
            outcome = Outcome(invocation_id, False, error=f"Timeout value of {self.timeout_seconds:g}s exceeded",
                              duration_ms=duration_ms)
            log.error("Function '%s' (Id=%s) exceeded functionTimeout; it keeps running in the background",
                      spec.name, invocation_id)
        elif not reply.succeeded:
            outcome = Outcome(invocation_id, False, error=reply.error, duration_ms=duration_ms)
            log.error("Function '%s' (Id=%s) raised\n%s", spec.name, invocation_id, reply.trace.rstrip() or reply.error)
        else:
            outcome = Outcome(invocation_id, True, result=reply.result, duration_ms=duration_ms)
        log.info("Executed 'Functions.%s' (%s, Id=%s, Duration=%dms, Reason=%s)", spec.name,
                 "Succeeded" if outcome.succeeded else "Failed", invocation_id, duration_ms, reason)
        return outcome

    def _start(self, spec: FunctionSpec, trigger_value: Any, invocation_id: str) -> Future[Reply]:
        if self.workers is not None:
            return self.workers.submit(invocation_id, spec.name, trigger_value)
        future: Future[Reply] = Future()

        def run() -> None:
            future.set_result(call_user_function(spec, trigger_value, invocation_id))

        threading.Thread(target=run, name=f"invoke-{spec.name}-{invocation_id[:8]}", daemon=True).start()
        return future
