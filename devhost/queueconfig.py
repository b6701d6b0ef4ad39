"""host.json `extensions.queues` and devhost's queue lease setting, read and checked at start.

Owns the host's defaults and limits for queue triggers (batchSize 16, at most 32;
newBatchThreshold batchSize/2; maxPollingInterval 1 minute, at least 100 ms;
visibilityTimeout 0; maxDequeueCount 5; messageEncoding base64), so a host.json the real
host would refuse or misread fails devhost's start with a message saying what to fix.
https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue#host-json
It never touches storage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from devhost.functions import StartupError, parse_timespan

MINIMUM_POLLING_SECONDS = 0.1  # the host's QueuePollingIntervals.Minimum
MAX_BATCH_SIZE = 32  # what one Get Messages call can return
LEASE_SETTING = "DEVHOST_QUEUE_LEASE_SECONDS"
DEFAULT_LEASE_SECONDS = 10


@dataclass(frozen=True)
class QueueOptions:
    """host.json `extensions.queues`, with the host's defaults and limits."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_seconds: float = 60.0
    visibility_timeout_seconds: float = 0.0
    max_dequeue_count: int = 5
    message_encoding: str = "base64"

    @classmethod
    def from_host_json(cls, section: Mapping[str, Any], where: str = "host.json") -> QueueOptions:
        # .NET configuration keys are case-insensitive.
        values = {str(key).lower(): value for key, value in section.items()}
        prefix = f"{where}: extensions.queues"
        batch_size = _integer(values.get("batchsize", 16), f"{prefix}.batchSize", 1, MAX_BATCH_SIZE)
        threshold = values.get("newbatchthreshold", -1)
        new_batch_threshold = batch_size // 2 if threshold == -1 else _integer(
            threshold, f"{prefix}.newBatchThreshold", 0, None)
        polling = _duration(values.get("maxpollinginterval", "00:01:00"), f"{prefix}.maxPollingInterval")
        if polling < MINIMUM_POLLING_SECONDS:
            raise StartupError(f"{prefix}.maxPollingInterval must be at least 00:00:00.100")
        visibility = _duration(values.get("visibilitytimeout", "00:00:00"), f"{prefix}.visibilityTimeout")
        max_dequeue_count = _integer(values.get("maxdequeuecount", 5), f"{prefix}.maxDequeueCount", 1, None)
        encoding = str(values.get("messageencoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise StartupError(f"{prefix}.messageEncoding must be \"base64\" or \"none\", not {encoding!r}")
        return cls(batch_size, new_batch_threshold, polling, visibility, max_dequeue_count, encoding)


def _integer(value: Any, where: str, minimum: int, maximum: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
            maximum is not None and value > maximum):
        bounds = f"{minimum}..{maximum}" if maximum is not None else f"at least {minimum}"
        raise StartupError(f"{where} must be a whole number {bounds}, not {value!r}")
    return value


def _duration(value: Any, where: str) -> float:
    if isinstance(value, int | float):
        # Functions 1.x wrote milliseconds; 2.x and later read a TimeSpan, where a bare number means days.
        raise StartupError(f"{where}: write the duration as \"hh:mm:ss\" (a bare number is not milliseconds "
                           "since Functions 2.x)")
    return parse_timespan(value, where)


def read_lease_seconds(environ: Mapping[str, str]) -> int:
    text = environ.get(LEASE_SETTING)
    if not text:
        return DEFAULT_LEASE_SECONDS
    try:
        seconds = int(text)
    except ValueError:
        seconds = 0
    if not 1 <= seconds <= 3600:
        raise StartupError(f"{LEASE_SETTING}={text!r}: give whole seconds between 1 and 3600")
    return seconds
