"""The queue trigger's pure rules: host.json `extensions.queues`, message decoding, polling back-off, the lease."""

from __future__ import annotations

import base64
import json
import random
import threading
from pathlib import Path

import pytest

from devhost.functions import FunctionSpec, HostConfig, Invoker, StartupError, read_host_json
from devhost.queueconfig import DEFAULT_LEASE_SECONDS, QueueOptions, read_lease_seconds
from devhost.queues import PollingDelay, QueueListener, decode_body
from devhost.stack import azurite_connection_string
from shared.sessions import POOL_SIZE, Session

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_are_the_hosts() -> None:
    options = QueueOptions.from_host_json({})
    assert options == QueueOptions(batch_size=16, new_batch_threshold=8, max_polling_seconds=60.0,
                                   visibility_timeout_seconds=0.0, max_dequeue_count=5, message_encoding="base64")
    assert QueueOptions.from_host_json({"batchSize": 5}).new_batch_threshold == 2  # batchSize/2 unless given


def test_product_host_json_suits_a_notification_driven_sync() -> None:
    options = QueueOptions.from_host_json(read_host_json(ROOT).queues)
    assert options.max_polling_seconds <= 2  # an idle queue is looked at within seconds
    assert options.batch_size == 16 and options.max_dequeue_count == 5
    assert options.visibility_timeout_seconds >= 5  # retries of a failing message are spaced
    assert options.message_encoding == "base64"  # what TextBase64EncodePolicy sends


def test_host_json_values_are_read_case_insensitively_with_timespans(tmp_path: Path) -> None:
    (tmp_path / "host.json").write_text(json.dumps({"extensions": {"queues": {
        "MaxPollingInterval": "00:00:02", "batchsize": 32, "newBatchThreshold": 0,
        "visibilityTimeout": "00:00:07.500", "maxDequeueCount": 1, "messageEncoding": "None"}}}))
    options = QueueOptions.from_host_json(read_host_json(tmp_path).queues)
    assert options == QueueOptions(32, 0, 2.0, 7.5, 1, "none")


@pytest.mark.parametrize(("section", "complaint"), [
    ({"batchSize": 33}, "batchSize"),
    ({"batchSize": 0}, "batchSize"),
    ({"newBatchThreshold": -2}, "newBatchThreshold"),
    ({"maxDequeueCount": 0}, "maxDequeueCount"),
    ({"maxPollingInterval": "00:00:00.050"}, "at least 00:00:00.100"),
    ({"maxPollingInterval": 2000}, "hh:mm:ss"),  # Functions 1.x milliseconds
    ({"visibilityTimeout": "soon"}, "visibilityTimeout"),
    ({"messageEncoding": "utf8"}, "messageEncoding"),
])
def test_values_the_host_would_refuse_stop_the_start(section: dict[str, object], complaint: str) -> None:
    with pytest.raises(StartupError, match=complaint):
        QueueOptions.from_host_json(section)


def test_base64_bodies_are_decoded_and_bad_ones_refused() -> None:
    encoded = base64.b64encode("Raum Süd 3.014 gebucht".encode()).decode()
    assert decode_body(encoded, "base64") == "Raum Süd 3.014 gebucht".encode()
    assert decode_body(encoded[:8] + "\r\n" + encoded[8:], "base64") == "Raum Süd 3.014 gebucht".encode()
    assert decode_body(None, "base64") == b""
    with pytest.raises(ValueError, match="base64"):
        decode_body("plain text!", "base64")
    assert decode_body("plain text!", "none") == b"plain text!"


def test_an_empty_queue_is_polled_ever_less_often_up_to_the_maximum() -> None:
    delay = PollingDelay(maximum=2.0, rng=random.Random(7))
    waits = [delay.next(found_messages=False) for _ in range(12)]
    assert waits[0] == pytest.approx(0.1)
    assert all(later >= earlier for earlier, later in zip(waits, waits[1:], strict=False))
    assert waits[4] > 4 * waits[0]  # exponential, not linear
    assert waits[-1] == 2.0 and max(waits) == 2.0
    assert delay.next(found_messages=True) == pytest.approx(0.1)  # messages found: back to 100 ms


def test_the_lease_setting() -> None:
    assert read_lease_seconds({}) == DEFAULT_LEASE_SECONDS
    assert read_lease_seconds({"DEVHOST_QUEUE_LEASE_SECONDS": "3"}) == 3
    for bad in ("0", "1.5", "soon", "99999"):
        with pytest.raises(StartupError, match="DEVHOST_QUEUE_LEASE_SECONDS"):
            read_lease_seconds({"DEVHOST_QUEUE_LEASE_SECONDS": bad})


def test_the_listener_s_queue_clients_share_one_pooled_storage_transport() -> None:
    connection = azurite_connection_string(1, 1, 1)  # nothing is sent
    spec = FunctionSpec("changes", "queue", {"type": "queueTrigger", "name": "message", "queueName": "changes",
                                             "connection": "DataStorage"}, lambda message: None, ".")
    listener = QueueListener(spec, {"DataStorage": connection}, HostConfig(), Invoker(None), threading.Event(),
                             lease_seconds=5)
    transport = listener.queue._pipeline._transport._transport  # the service client's, under the SDK's wrapper
    assert isinstance(transport.session, Session)
    assert transport.session.get_adapter("http://127.0.0.1:1")._pool_maxsize == POOL_SIZE
    assert (transport.connection_config.timeout, transport.connection_config.read_timeout) == (5, 60)
    assert listener.poison is not None and listener.poison._pipeline._transport._transport is transport
