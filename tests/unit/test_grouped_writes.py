"""Group commit (`shared.storage.GroupedWrites`): writers at the same moment share transactions,
each returns once its rows are committed, and a failed commit fails every writer it held."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from shared.storage import GroupedWrites


class SlowTable:
    """A table whose transactions take a while, so writers arriving meanwhile queue up."""

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.batches: list[list[tuple[str, dict[str, Any]]]] = []
        self.committed: set[str] = set()
        self.fail_with = fail_with
        self.lock = threading.Lock()

    def transact(self, batch: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        time.sleep(0.02)
        if self.fail_with is not None:
            raise self.fail_with
        with self.lock:
            self.batches.append(list(batch))
            self.committed.update(entity["RowKey"] for _, entity in batch)
        return [dict(entity) for _, entity in batch]


def rows(writer: int, count: int, partition: str = "day") -> list[tuple[str, dict[str, Any]]]:
    return [("upsert", {"PartitionKey": partition, "RowKey": f"w{writer:02d}-{n:03d}"}) for n in range(count)]


def write_all(writes: GroupedWrites, table: SlowTable, writers: int, count: int) -> dict[int, BaseException | None]:
    """Each writer hands in its rows at once; returns what each raised (None: returned) and checks that a
    writer's own rows were committed by the time it returned."""
    outcomes: dict[int, BaseException | None] = {}
    start = threading.Barrier(writers)

    def writer(number: int) -> None:
        start.wait()
        try:
            writes.write(rows(number, count))
            outcomes[number] = None
            assert {entity["RowKey"] for _, entity in rows(number, count)} <= table.committed
        except Exception as error:  # noqa: BLE001 - recorded for the test
            outcomes[number] = error

    threads = [threading.Thread(target=writer, args=(number,)) for number in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads), "a writer never returned"
    return outcomes


def test_writers_at_the_same_moment_share_transactions_and_each_returns_once_its_rows_are_in() -> None:
    table = SlowTable()
    outcomes = write_all(GroupedWrites(table), table, writers=20, count=3)
    assert outcomes == dict.fromkeys(range(20))
    assert len(table.committed) == 60
    assert len(table.batches) < 20  # shared: fewer transactions than writers
    for batch in table.batches:
        assert len(batch) <= 100
        # A writer's own rows stay in its order.
        for number in range(20):
            mine = [entity["RowKey"] for _, entity in batch if entity["RowKey"].startswith(f"w{number:02d}-")]
            assert mine == sorted(mine)


def test_a_group_of_more_than_a_hundred_rows_goes_in_several_transactions() -> None:
    table = SlowTable()
    outcomes = write_all(GroupedWrites(table), table, writers=8, count=40)
    assert outcomes == dict.fromkeys(range(8))
    assert len(table.committed) == 320 and all(len(batch) <= 100 for batch in table.batches)


def test_a_failed_commit_fails_every_writer_it_held_and_the_next_writer_commits_afresh() -> None:
    failing = SlowTable(fail_with=RuntimeError("the transaction was refused"))
    writes = GroupedWrites(failing)
    outcomes = write_all(writes, failing, writers=6, count=2)
    assert all(isinstance(error, RuntimeError) for error in outcomes.values()), outcomes
    failing.fail_with = None
    writes.write(rows(99, 2))
    assert failing.committed == {"w99-000", "w99-001"}


def test_only_repeatable_operations_without_etags_are_committed_with_others() -> None:
    writes = GroupedWrites(SlowTable())
    with pytest.raises(ValueError):
        writes.write([("create", {"PartitionKey": "p", "RowKey": "r"})])
    with pytest.raises(ValueError):
        writes.write([("upsert", {"PartitionKey": "p", "RowKey": "r", "_etag": "W/1"})])
