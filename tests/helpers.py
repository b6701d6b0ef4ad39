"""Small helpers the tests share: waiting by polling with a deadline (never sleep as synchronisation)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 20.0, interval: float = 0.2,
               message: str | None = None) -> T:
    """Poll `predicate` until it returns something truthy; return that value, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(message or f"condition not met within {timeout:g}s: {predicate}")
        time.sleep(interval)
