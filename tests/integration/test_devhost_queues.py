"""devhost's queue trigger against a real Azurite, through tests/sample_app's `sample_queue`.

The sample function records each invocation as a blob in `sample-invocations` (`queue/`,
`queue-failed/`, `queue-held/`), so these tests see what ran through storage; they wait by
polling with deadlines. Messages are sent base64-encoded, as the product sends them.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError, ServiceRequestError
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devhost.functions import FunctionSpec, HostConfig, Invoker
from devhost.processes import Process
from devhost.queues import QueueListener
from devhost.stack import AZURITE, Stack, azurite_connection_string, free_port
from tests.conftest import SAMPLE_ENV
from tests.helpers import wait_until
from tests.integration.test_devhost_triggers import records

QUEUE = SAMPLE_ENV["SAMPLE_QUEUE"]


@pytest.fixture(scope="module")
def queue(sample_stack: Stack) -> QueueClient:
    client = QueueClient.from_connection_string(sample_stack.storage_connection_string, QUEUE,
                                                message_encode_policy=TextBase64EncodePolicy())
    try:
        client.create_queue()
    except ResourceExistsError:
        pass
    return client


def raw_queue(stack: Stack, name: str) -> QueueClient:
    return QueueClient.from_connection_string(stack.storage_connection_string, name)


def runs(stack: Stack, body: str, kind: str = "queue") -> list[dict[str, Any]]:
    return [record for record in records(stack, kind) if record["body"] == body]


def deleted(queue: QueueClient, message: Any) -> bool:
    """Whether the message is gone (a stale pop receipt on a message still there is a 400, not a 404)."""
    try:
        queue.delete_message(message.id, message.pop_receipt)
    except ResourceNotFoundError:
        return True
    except HttpResponseError:
        return False
    raise AssertionError("deleted a message devhost should have been holding")


def poisoned(stack: Stack, content: str) -> list[Any]:
    try:
        return [m for m in raw_queue(stack, f"{QUEUE}-poison").peek_messages(max_messages=32) if m.content == content]
    except ResourceNotFoundError:  # created with the first poison message
        return []


def devhost_log(stack: Stack) -> str:
    assert stack.devhost_log is not None
    return stack.devhost_log.read_text()


def test_message_runs_once_with_its_metadata_and_is_deleted(sample_stack: Stack, queue: QueueClient) -> None:
    body = f"hello {uuid.uuid4().hex}"
    sent = queue.send_message(body)
    run = wait_until(lambda: runs(sample_stack, body), timeout=30)[0]
    assert run["id"] == sent.id
    assert run["dequeue_count"] == 1
    assert run["pop_receipt"]
    assert run["insertion_time"] and run["expiration_time"] and run["time_next_visible"]
    wait_until(lambda: deleted(queue, sent), timeout=30, message="the message was not deleted after it succeeded")
    # A later message has been run, so the first one would have been fetched again by now if it were back.
    marker = f"marker {uuid.uuid4().hex}"
    queue.send_message(marker)
    wait_until(lambda: runs(sample_stack, marker), timeout=30)
    assert len(runs(sample_stack, body)) == 1


def test_queue_name_setting_expression_resolves(sample_stack: Stack, queue: QueueClient) -> None:
    # The trigger says %SAMPLE_QUEUE%; the message above reached it on the queue that setting names.
    assert f"Listening on queue {QUEUE} for function sample_queue" in devhost_log(sample_stack)
    body = f"resolved {uuid.uuid4().hex}"
    raw_queue(sample_stack, QUEUE).send_message(base64.b64encode(body.encode()).decode())
    wait_until(lambda: runs(sample_stack, body), timeout=30)


def test_failing_message_is_tried_five_times_then_moved_to_the_poison_queue(sample_stack: Stack,
                                                                              queue: QueueClient) -> None:
    body = f"fail {uuid.uuid4().hex}"
    sent = queue.send_message(body)
    encoded = base64.b64encode(body.encode()).decode()
    poison = wait_until(lambda: poisoned(sample_stack, encoded), timeout=60)
    assert len(poison) == 1  # the content as it was sent, still base64
    assert sorted(run["dequeue_count"] for run in runs(sample_stack, body, "queue-failed")) == [1, 2, 3, 4, 5]
    assert deleted(queue, sent)
    failures = [line for line in devhost_log(sample_stack).splitlines()
                if "Executed 'Functions.sample_queue' (Failed" in line and f"MessageId: {sent.id}," in line]
    assert len(failures) == 5
    assert f"Message Id '{sent.id}' has reached MaxDequeueCount of 5" in devhost_log(sample_stack)


def test_message_that_is_not_base64_goes_to_the_poison_queue_without_a_run(sample_stack: Stack,
                                                                            queue: QueueClient) -> None:
    content = f"plain text {uuid.uuid4().hex} is not base64!"
    raw_queue(sample_stack, QUEUE).send_message(content)
    wait_until(lambda: poisoned(sample_stack, content), timeout=30)
    assert not [record for record in records(sample_stack, "queue") if content in record["body"]]


def test_many_messages_all_run_once(sample_stack: Stack, queue: QueueClient) -> None:
    token = uuid.uuid4().hex
    bodies = {f"batch {token} {index}" for index in range(40)}  # more than one batch of 16
    for body in bodies:
        queue.send_message(body)

    def ran() -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in records(sample_stack, "queue"):
            if record["body"] in bodies:
                counts[record["body"]] = counts.get(record["body"], 0) + 1
        return counts if set(counts) == bodies else {}

    counts = wait_until(ran, timeout=90)
    assert set(counts.values()) == {1}


def test_messages_of_a_batch_run_concurrently(sample_stack: Stack, queue: QueueClient) -> None:
    # Each of the two waits for the other at a barrier: one at a time, both would fail.
    token = uuid.uuid4().hex
    bodies = [f"together:{token}:a", f"together:{token}:b"]
    for body in bodies:
        queue.send_message(body)
    wait_until(lambda: all(runs(sample_stack, body) for body in bodies), timeout=60)
    assert not [r for r in records(sample_stack, "queue-failed") if token in r["body"]]


def test_message_of_a_killed_devhost_runs_again_after_the_restart(sample_stack: Stack, queue: QueueClient) -> None:
    token = uuid.uuid4().hex
    body = f"hold:{token}"
    sent = queue.send_message(body)
    held = wait_until(lambda: runs(sample_stack, body, "queue-held"), timeout=30)
    assert held[0]["dequeue_count"] == 1

    sample_stack.kill_devhost()
    sample_stack.wait_for_devhost()
    releases = BlobServiceClient.from_connection_string(
        sample_stack.storage_connection_string).get_container_client("sample-releases")
    if not releases.exists():
        releases.create_container()
    releases.upload_blob(token, b"")

    done = wait_until(lambda: runs(sample_stack, body), timeout=60)
    assert done[0]["id"] == sent.id
    assert done[0]["dequeue_count"] == 2  # the killed run was the first try
    wait_until(lambda: deleted(queue, sent), timeout=30)


def test_admin_api_runs_a_queue_function_with_the_input_as_message_text(sample_stack: Stack,
                                                                         fire_sample: Any) -> None:
    body = f"by hand {uuid.uuid4().hex}"
    outcome = fire_sample("sample_queue", input=body)
    assert outcome["outcome"] == "succeeded"
    run = runs(sample_stack, body)
    assert len(run) == 1 and run[0]["id"] is None and run[0]["dequeue_count"] == 0
    failed = fire_sample("sample_queue", input="fail by hand")
    assert failed["outcome"] == "failed" and "told to fail" in failed["error"]


def test_a_deleted_queue_is_created_again_and_listened_to(sample_stack: Stack, queue: QueueClient) -> None:
    queue.delete_queue()

    def exists() -> bool:
        try:
            queue.get_queue_properties()
        except ResourceNotFoundError:
            return False
        return True

    wait_until(exists, timeout=60, message="devhost did not create the missing queue again")
    body = f"after delete {uuid.uuid4().hex}"
    queue.send_message(body)
    wait_until(lambda: runs(sample_stack, body), timeout=30)


def test_the_listener_outlasts_storage_being_down_and_then_runs_messages(tmp_path: Path,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    # Its own listener and, only later, its own Azurite: storage is down when the listener starts.
    caplog.set_level(logging.INFO, logger="devhost.queues")
    ports = [free_port() for _ in range(3)]
    connection = azurite_connection_string(*ports)
    seen: list[bytes] = []
    spec = FunctionSpec("outage", "queue", {"type": "queueTrigger", "name": "message", "queueName": "outage",
                                            "connection": "DataStorage"},
                        lambda message: seen.append(message.get_body()), str(tmp_path))
    stop = threading.Event()
    listener = QueueListener(spec, {"DataStorage": connection}, HostConfig(queues={"maxPollingInterval": "00:00:01"}),
                             Invoker(None), stop, lease_seconds=5)
    thread = threading.Thread(target=listener.run, daemon=True)
    thread.start()
    azurite = None
    try:
        wait_until(lambda: "queue outage: cannot poll" in caplog.text, timeout=60)
        azurite = Process.spawn("azurite", [str(AZURITE), "--silent", "--inMemoryPersistence", "--skipApiVersionCheck",
                                            "--blobPort", str(ports[0]), "--queuePort", str(ports[1]),
                                            "--tablePort", str(ports[2])], dict(os.environ), tmp_path / "azurite.log",
                                tmp_path)
        queue = QueueClient.from_connection_string(connection, "outage", message_encode_policy=TextBase64EncodePolicy(),
                                                   retry_total=0)

        def created() -> bool:  # by the listener, once storage answers
            try:
                queue.get_queue_properties()
            except (ResourceNotFoundError, ServiceRequestError):
                return False
            return True

        wait_until(created, timeout=60)
        queue.send_message("after the outage")
        wait_until(lambda: seen == [b"after the outage"], timeout=30)
        assert thread.is_alive() and "queue outage: storage answers again" in caplog.text
        assert caplog.text.count("cannot poll") == 1  # said once, not once per poll
    finally:
        stop.set()
        listener.shutdown()
        if azurite is not None:
            azurite.stop()
        thread.join(30)
