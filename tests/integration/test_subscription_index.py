"""SubscriptionIndex against Azurite: a subscription found once is not read again, and nothing
unknown, removed or re-pointed is answered from memory."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from shared.notifications import SubscriptionIndex
from shared.storage import Table


class CountingTable(Table):
    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.reads = 0

    def get(self, partition_key: str, row_key: str) -> Any:
        self.reads += 1
        return super().get(partition_key, row_key)


@pytest.fixture
def table(app_context: Any) -> Iterator[CountingTable]:
    client = app_context.storage.tables.create_table_if_not_exists(f"subs{uuid.uuid4().hex[:12]}")
    yield CountingTable(client)
    app_context.storage.tables.delete_table(client.table_name)


def test_a_subscription_is_read_once_whatever_the_case_of_its_keys(table: CountingTable) -> None:
    index = SubscriptionIndex(table)
    index.put("Tenant-A", "Sub-1", "room1@contoso.com")
    assert index.find("tenant-a", "sub-1") == "room1@contoso.com"
    assert index.find("TENANT-A", "SUB-1") == "room1@contoso.com"
    assert table.reads == 1


def test_an_unknown_subscription_is_read_each_time_and_found_once_written(table: CountingTable) -> None:
    index = SubscriptionIndex(table)
    assert index.find("tenant-a", "sub-2") is None
    assert index.find("tenant-a", "sub-2") is None
    assert table.reads == 2
    index.put_many("tenant-a", [("sub-2", "room2@contoso.com")])
    assert index.find("tenant-a", "sub-2") == "room2@contoso.com"


def test_a_removed_or_rewritten_subscription_is_read_again(table: CountingTable) -> None:
    index = SubscriptionIndex(table)
    index.put("tenant-a", "sub-3", "room3@contoso.com")
    assert index.find("tenant-a", "sub-3") == "room3@contoso.com"
    index.remove("tenant-a", "sub-3")
    assert index.find("tenant-a", "sub-3") is None
    index.put("tenant-a", "sub-3", "room4@contoso.com")
    assert index.find("tenant-a", "sub-3") == "room4@contoso.com"
    index.put_many("tenant-a", [("sub-3", "room5@contoso.com")])
    assert index.find("tenant-a", "sub-3") == "room5@contoso.com"


def test_memory_is_bounded_the_longest_unused_read_again(table: CountingTable) -> None:
    index = SubscriptionIndex(table, known=2)
    index.put_many("tenant-a", [(f"sub-{n}", f"room{n}@contoso.com") for n in range(3)])
    for n in range(3):
        index.find("tenant-a", f"sub-{n}")
    reads = table.reads
    assert index.find("tenant-a", "sub-2") == "room2@contoso.com"  # remembered
    assert table.reads == reads
    assert index.find("tenant-a", "sub-0") == "room0@contoso.com"  # forgotten first: read again
    assert table.reads == reads + 1
