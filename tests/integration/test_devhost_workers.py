"""devhost with FUNCTIONS_WORKER_PROCESS_COUNT=2: invocations run in two language worker processes,
each trigger kind's value crosses intact, and a worker that dies is started again."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devhost.functions import StartupError
from devhost.stack import Stack
from devhost.workers import process_count
from tests.conftest import SAMPLE_ENV
from tests.helpers import wait_until
from tests.integration.test_devhost_triggers import records


@pytest.fixture(scope="module")
def workers_stack() -> Iterator[Stack]:
    with Stack.start(in_memory=True, free_ports=True, with_sim=False, app="tests.sample_app.function_app:app",
                     extra_env={**SAMPLE_ENV, "FUNCTIONS_WORKER_PROCESS_COUNT": "2"}) as running:
        yield running


def _workers(stack: Stack) -> list[int]:
    return requests.get(f"{stack.base_url}/admin/host/status", timeout=30).json()["workerProcesses"]


def _pid_answers(stack: Stack, count: int) -> set[int]:
    def ask(_: int) -> int:
        response = requests.get(f"{stack.base_url}/api/pid", timeout=30)
        assert response.status_code == 200
        return int(response.text)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return set(pool.map(ask, range(count)))


def test_http_invocations_are_spread_over_both_workers_and_never_run_in_devhost(workers_stack: Stack) -> None:
    workers = _workers(workers_stack)
    assert len(set(workers)) == 2
    assert workers_stack.processes[-1].popen.pid not in workers
    assert _pid_answers(workers_stack, 12) == set(workers)


def test_an_http_request_and_response_cross_whole(workers_stack: Stack) -> None:
    response = requests.put(f"{workers_stack.base_url}/api/items/42", params={"q": "a b"}, data=b"\xe2\x9c\x93 body",
                            headers={"X-Custom": "yes"}, timeout=30)
    assert response.status_code == 200
    assert response.headers["X-Sample"] == "yes"
    echoed = response.json()
    assert (echoed["method"], echoed["route_params"], echoed["params"], echoed["body"]) == (
        "PUT", {"id": "42"}, {"q": "a b"}, "\u2713 body")
    assert echoed["headers"]["x-custom"] == "yes"
    teapot = requests.get(f"{workers_stack.base_url}/api/teapot", timeout=30)
    assert (teapot.status_code, teapot.content, teapot.headers["X-Brew"]) == (418, b"short and stout", "earl grey")
    assert teapot.headers["Content-Type"].startswith("text/x-teapot")


def test_a_function_that_raises_in_a_worker_is_a_500_that_says_nothing(workers_stack: Stack) -> None:
    response = requests.get(f"{workers_stack.base_url}/api/boom", timeout=30)
    assert response.status_code == 500
    assert "secret-detail" not in response.text


def test_blob_and_queue_triggers_run_in_the_workers(workers_stack: Stack) -> None:
    workers = set(_workers(workers_stack))
    service = BlobServiceClient.from_connection_string(workers_stack.storage_connection_string)
    container = service.get_container_client(SAMPLE_ENV["SAMPLE_CONTAINER"])
    if not container.exists():
        container.create_container()
    name = f"w-{uuid.uuid4().hex[:8]}.txt"
    container.upload_blob(name, b"from a worker")
    blob = wait_until(lambda: [r for r in records(workers_stack, "blob") if r["name"].endswith(name)], timeout=30)
    assert blob[0]["content"] == "from a worker"
    assert blob[0]["pid"] in workers

    queue = QueueClient.from_connection_string(workers_stack.storage_connection_string, SAMPLE_ENV["SAMPLE_QUEUE"],
                                               message_encode_policy=TextBase64EncodePolicy())
    body = f"worker-{uuid.uuid4().hex[:8]}"
    queue.send_message(body)
    done = wait_until(lambda: [r for r in records(workers_stack, "queue") if r["body"] == body], timeout=30)
    assert done[0]["pid"] in workers
    assert done[0]["dequeue_count"] == 1


def test_a_worker_that_dies_is_started_again_and_the_other_keeps_answering(workers_stack: Stack) -> None:
    before = _workers(workers_stack)
    os.kill(before[0], signal.SIGKILL)
    after = wait_until(lambda: (lambda now: now if now[0] != before[0] and len(set(now)) == 2 else None)(
        _workers(workers_stack)), timeout=60, message="the killed worker was not started again")
    assert after[1] == before[1]
    assert _pid_answers(workers_stack, 12) == set(after)


@pytest.mark.parametrize("value", ["0", "11", "two", "-1"])
def test_a_count_the_host_would_refuse_stops_devhost_with_the_reason(value: str) -> None:
    with pytest.raises(StartupError, match="FUNCTIONS_WORKER_PROCESS_COUNT"):
        process_count({"FUNCTIONS_WORKER_PROCESS_COUNT": value})


def test_without_the_setting_functions_run_in_devhost_itself() -> None:
    assert process_count({}) == 1
    assert process_count({"FUNCTIONS_WORKER_PROCESS_COUNT": " 3 "}) == 3


def test_workers_end_with_a_killed_devhost_and_come_back_with_its_restart(workers_stack: Stack) -> None:
    before = _workers(workers_stack)
    workers_stack.kill_devhost()

    def gone() -> bool:
        return not any(os.path.exists(f"/proc/{pid}") and "Z" not in _state(pid) for pid in before)

    wait_until(gone, timeout=30, message="worker processes outlived the devhost that started them")
    workers_stack.wait_for_devhost()
    after = _workers(workers_stack)
    assert len(set(after)) == 2 and not set(after) & set(before)
    assert _pid_answers(workers_stack, 12) == set(after)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"
