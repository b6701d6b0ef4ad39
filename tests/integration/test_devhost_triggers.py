"""devhost's timer and blob triggers against a real Azurite, through tests/sample_app.

The sample app records each timer and blob invocation as a blob in `sample-invocations`,
so these tests observe what ran through storage, and wait by polling with deadlines.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from devhost.stack import Stack
from tests.conftest import SAMPLE_ENV
from tests.helpers import wait_until

CONTAINER = SAMPLE_ENV["SAMPLE_CONTAINER"]


def records(stack: Stack, kind: str) -> list[dict[str, Any]]:
    container = BlobServiceClient.from_connection_string(stack.storage_connection_string).get_container_client(
        "sample-invocations")
    if not container.exists():
        return []
    return [json.loads(container.download_blob(item.name).readall())
            for item in container.list_blobs(name_starts_with=f"{kind}/")]


def blob_records(stack: Stack, blob_name: str) -> list[dict[str, Any]]:
    return [r for r in records(stack, "blob") if r["name"] == f"{CONTAINER}/{blob_name}"]


@pytest.fixture(scope="module")
def uploads(sample_stack: Stack) -> Any:
    container = BlobServiceClient.from_connection_string(
        sample_stack.storage_connection_string).get_container_client(CONTAINER)
    if not container.exists():
        container.create_container()
    return container


def upload(uploads: Any, name: str, content: bytes) -> None:
    uploads.upload_blob(name, content, overwrite=True)


def processed_marker(stack: Stack, uploads: Any) -> None:
    """Upload a fresh blob and wait until it fired: the watcher has polled past everything before it."""
    name = f"marker-{uuid.uuid4().hex}.txt"
    upload(uploads, name, b"marker")
    wait_until(lambda: blob_records(stack, name), timeout=30, message=f"{name} never fired")


def test_timer_fires_on_its_schedule(sample_stack: Stack) -> None:
    # %SAMPLE_SCHEDULE% resolves to every second.
    wait_until(lambda: len([r for r in records(sample_stack, "timer") if not r["past_due"]]) >= 2, timeout=30)


def test_timer_fires_on_demand(sample_stack: Stack, fire_sample: Any) -> None:
    outcome = fire_sample("sample_timer")
    assert outcome["outcome"] == "succeeded"
    log_path = sample_stack.devhost_log
    assert log_path is not None
    wait_until(lambda: f"Id={outcome['invocationId']}, " in log_path.read_text(), timeout=10)


def test_blob_fires_once_per_version_and_not_again_after_a_restart(sample_stack: Stack, uploads: Any) -> None:
    name = f"nested/dir/{uuid.uuid4().hex}.csv"  # {name} spans '/'
    upload(uploads, name, b"first")
    first = wait_until(lambda: blob_records(sample_stack, name), timeout=30)
    assert first[0]["content"] == "first" and first[0]["length"] == 5
    processed_marker(sample_stack, uploads)
    assert len(blob_records(sample_stack, name)) == 1

    upload(uploads, name, b"second version")
    wait_until(lambda: len(blob_records(sample_stack, name)) == 2, timeout=30)
    assert sorted(r["content"] for r in blob_records(sample_stack, name)) == ["first", "second version"]

    sample_stack.restart_devhost()
    processed_marker(sample_stack, uploads)
    assert len(blob_records(sample_stack, name)) == 2


def test_timer_missed_while_devhost_was_down_fires_past_due(sample_stack: Stack) -> None:
    sample_stack.restart_devhost()
    wait_until(lambda: [r for r in records(sample_stack, "timer") if r["past_due"]], timeout=30)


def test_failing_blob_is_tried_five_times_then_poisoned(sample_stack: Stack, uploads: Any) -> None:
    name = f"bad-{uuid.uuid4().hex}.csv"
    upload(uploads, name, b"fail please")
    queue = QueueServiceClient.from_connection_string(sample_stack.storage_connection_string).get_queue_client(
        "webjobs-blobtrigger-poison")

    def poisoned() -> dict[str, Any] | None:
        try:
            messages = queue.peek_messages(max_messages=32)
        except ResourceNotFoundError:  # the host creates the queue with the first poison message
            return None
        for message in messages:
            body = json.loads(base64.b64decode(message.content))
            if body["BlobName"] == name:
                return body
        return None

    body = wait_until(poisoned, timeout=60)
    etag = uploads.get_blob_client(name).get_blob_properties().etag
    assert body["FunctionId"] == "Host.Functions.sample_blob"
    assert body["BlobType"] == "BlockBlob"
    assert body["ContainerName"] == CONTAINER
    assert body["ETag"] == etag
    processed_marker(sample_stack, uploads)
    log_path = sample_stack.devhost_log
    assert log_path is not None
    failures = [line for line in log_path.read_text().splitlines()
                if "Executed 'Functions.sample_blob' (Failed" in line and name in line]
    assert len(failures) == 5
    receipts = BlobServiceClient.from_connection_string(sample_stack.storage_connection_string).get_container_client(
        "azure-webjobs-hosts").list_blobs(name_starts_with="blobreceipts/")
    assert any(item.name.endswith(f"/Host.Functions.sample_blob/{etag}/{CONTAINER}/{name}") for item in receipts)
