"""Independent storage requests run side by side on a pool the composition root owns.

Owns running a list of calls on a pool and giving back their results in order, the first
failure raised once every call has finished (so nothing is left running unseen). It never
creates a pool at import: `Parallel` is built once per process by `shared/context.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# Requests in flight at once; within the HTTP connection pool of one storage client
# (10 connections per host by default).
PARALLEL_REQUESTS = 8


class Parallel:
    def __init__(self, workers: int = PARALLEL_REQUESTS, name: str = "storage") -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    def run(self, calls: list[Callable[[], Any]]) -> list[Any]:
        if len(calls) <= 1:
            return [call() for call in calls]
        futures = [self._pool.submit(call) for call in calls]
        errors = [future.exception() for future in futures]
        for error in errors:
            if error is not None:
                raise error
        return [future.result() for future in futures]

    def submit(self, call: Callable[[], Any]) -> Any:
        """One call in the background (a snapshot reload); its future."""
        return self._pool.submit(call)
