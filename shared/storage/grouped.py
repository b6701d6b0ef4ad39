"""Writes of many threads to one hot partition, committed together (group commit).

Owns turning the small writes that threads of one process hand in at about the same moment
into as few entity-group transactions as the rows allow, instead of one each. A writer hands
in its operations and waits; the first writer to find no commit running commits what every
writer has handed in so far (its own included), then hands the turn to the first writer still
waiting, so no writer commits more than one group for others. A writer returns once the
transactions holding its operations applied, and raises what the commit of its group raised
(then some of its operations may have applied, as with `Table.submit_in_batches`: callers make
them repeatable). Only upserts and deletes without ETags: operations of different writers
must not depend on each other. It never reorders a writer's own operations.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from shared.storage.tables import Operation, Table, in_transactions

REPEATABLE = ("upsert", "upsert-merge", "delete")


class _Waiting:
    def __init__(self, operations: Sequence[Operation]) -> None:
        self.operations = operations
        self.done = threading.Event()
        self.leads = False  # woken to commit the next group, not because its own were committed
        self.error: BaseException | None = None


class GroupedWrites:
    def __init__(self, table: Table) -> None:
        self.table = table
        self._lock = threading.Lock()
        self._waiting: list[_Waiting] = []
        self._committing = False

    def write(self, operations: Sequence[Operation]) -> None:
        """Apply these operations (upserts and deletes, no ETags) with what others hand in meanwhile."""
        if any(kind not in REPEATABLE or "_etag" in entity for kind, entity in operations):
            raise ValueError("only upserts and deletes without ETags can be committed with others' writes")
        if not operations:
            return
        mine = _Waiting(operations)
        with self._lock:
            self._waiting.append(mine)
            leads = not self._committing
            self._committing = True
        if not leads:
            mine.done.wait()
            if not mine.leads:
                if mine.error is not None:
                    raise mine.error
                return
        self._commit_group()
        if mine.error is not None:
            raise mine.error

    def _commit_group(self) -> None:
        with self._lock:
            group, self._waiting = self._waiting, []
        try:
            for batch in in_transactions(operation for waiting in group for operation in waiting.operations):
                self.table.transact(batch)
        except BaseException as error:  # noqa: BLE001 - every writer of the group raises it
            for waiting in group:
                waiting.error = error
        finally:
            with self._lock:
                following = self._waiting[0] if self._waiting else None
                self._committing = following is not None
            for waiting in group:
                waiting.leads = False
                waiting.done.set()
            if following is not None:
                following.leads = True
                following.done.set()
