"""A small, ordinary v2 Functions app that exercises every trigger devhost runs.

Used only by tests/integration/test_devhost*.py: HTTP routes with parameters, one
that raises, a timer on `%SAMPLE_SCHEDULE%`, a blob trigger on
`%SAMPLE_CONTAINER%/{name}` that fails when the blob's content starts with "fail", and a
queue trigger on `%SAMPLE_QUEUE%` that fails when the message starts with "fail".
Every invocation of the timer, the blob and the queue trigger is recorded as a blob in
`sample-invocations`, so the tests can see what ran through storage alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
import uuid
from datetime import datetime, timezone

import azure.functions as func
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

RECORDS_CONTAINER = "sample-invocations"
RELEASES_CONTAINER = "sample-releases"


def _record(kind: str, data: dict[str, object]) -> None:
    service = BlobServiceClient.from_connection_string(os.environ["AzureWebJobsStorage"])
    container = service.get_container_client(RECORDS_CONTAINER)
    if not container.exists():
        with contextlib.suppress(ResourceExistsError):  # created concurrently
            container.create_container()
    name = f"{kind}/{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}.json"
    container.upload_blob(name, json.dumps({**data, "pid": os.getpid()}))


def _echo(req: func.HttpRequest) -> func.HttpResponse:
    body = {
        "method": req.method,
        "route_params": dict(req.route_params),
        "params": dict(req.params),
        "body": req.get_body().decode("utf-8", errors="replace"),
        "headers": {name: value for name, value in req.headers.items()},
    }
    return func.HttpResponse(json.dumps(body), mimetype="application/json", headers={"X-Sample": "yes"})


@app.route(route="health", methods=["GET"])
def health(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("ok")


@app.route(route="items/{id:int}", methods=["GET", "PUT"])
def item(req: func.HttpRequest) -> func.HttpResponse:
    return _echo(req)


@app.route(route="items/search", methods=["GET"])
def item_search(req: func.HttpRequest) -> func.HttpResponse:
    return _echo(req)


@app.route(route="things/{name?}", methods=["GET"])
def things(req: func.HttpRequest) -> func.HttpResponse:
    return _echo(req)


@app.route(route="things/special", methods=["GET"])
def things_special(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("special")


# Two requests pass only when devhost runs them at the same time.
_pair = threading.Barrier(2, timeout=20)


@app.route(route="pair", methods=["GET"])
def pair(req: func.HttpRequest) -> func.HttpResponse:
    _pair.wait()
    return func.HttpResponse("together")


@app.route(route="files/{*path}")
def files(req: func.HttpRequest) -> func.HttpResponse:
    return _echo(req)


@app.route(route="pid", methods=["GET"])
def pid(req: func.HttpRequest) -> func.HttpResponse:
    """Which process ran it (devhost's own, or a language worker's)."""
    return func.HttpResponse(str(os.getpid()))


@app.route(route="teapot", methods=["GET"])
def teapot(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(b"short and stout", status_code=418, mimetype="text/x-teapot", charset="ascii",
                             headers={"X-Brew": "earl grey"})


@app.route(route="boom", methods=["GET"])
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("secret-detail-that-must-not-leak")


@app.route(route="async/{value}", methods=["GET"])
async def async_echo(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0)
    return func.HttpResponse(req.route_params["value"])


@app.function_name("sample_timer")
@app.timer_trigger(schedule="%SAMPLE_SCHEDULE%", arg_name="timer", run_on_startup=False)
def sample_timer(timer: func.TimerRequest) -> None:
    _record("timer", {"past_due": timer.past_due})


@app.function_name("sample_blob")
@app.blob_trigger(arg_name="blob", path="%SAMPLE_CONTAINER%/{name}", connection="AzureWebJobsStorage")
def sample_blob(blob: func.InputStream) -> None:
    content = blob.read()
    if content.startswith(b"fail"):
        raise ValueError(f"told to fail by {blob.name}")
    _record("blob", {"name": blob.name, "length": blob.length, "content": content.decode("utf-8")})


# Two "together:" messages pass only when devhost runs them at the same time.
_together = threading.Barrier(2, timeout=20)


def _released(token: str) -> bool:
    """Whether the test has created the blob `sample-releases/<token>` (polled for at most 50 s)."""
    service = BlobServiceClient.from_connection_string(os.environ["AzureWebJobsStorage"])
    blob = service.get_container_client(RELEASES_CONTAINER).get_blob_client(token)
    deadline = time.monotonic() + 50  # within host.json's functionTimeout of one minute
    while time.monotonic() < deadline:
        if blob.exists():
            return True
        time.sleep(0.2)
    return False


@app.function_name("sample_queue")
@app.queue_trigger(arg_name="message", queue_name="%SAMPLE_QUEUE%", connection="DataStorage")
def sample_queue(message: func.QueueMessage) -> None:
    body = message.get_body().decode("utf-8")
    data = {
        "id": message.id, "body": body, "dequeue_count": message.dequeue_count,
        "pop_receipt": message.pop_receipt,
        **{name: getattr(message, name).isoformat() if getattr(message, name) else None
           for name in ("insertion_time", "expiration_time", "time_next_visible")},
    }
    if body.startswith("fail"):
        _record("queue-failed", data)
        raise ValueError(f"told to fail by message {message.id}")
    if body.startswith("hold:"):
        # Runs until the test releases it: long enough to kill devhost mid-invocation.
        _record("queue-held", data)
        if not _released(body.removeprefix("hold:")):
            raise TimeoutError("never released")
    if body.startswith("together:"):
        _together.wait()
    _record("queue", data)
