"""Table.submit_repeatable against Azurite: upserts and deletes that may race a removal."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from shared.storage import Table


@pytest.fixture
def table(app_context: Any) -> Iterator[Table]:
    client = app_context.storage.tables.create_table_if_not_exists(f"rep{uuid.uuid4().hex[:12]}")
    yield Table(client)
    app_context.storage.tables.delete_table(client.table_name)


def _keys(table: Table) -> list[str]:
    return sorted(entity["RowKey"] for entity in table.query_all("PartitionKey eq @p", parameters={"p": "p"}))


def test_a_row_to_delete_that_is_gone_already_does_not_stop_the_others(table: Table) -> None:
    for key in ("a", "b", "c"):
        table.upsert({"PartitionKey": "p", "RowKey": key, "n": 1})
    # "x" was never there: the transaction is refused, and each operation is applied on its own.
    table.submit_repeatable([("delete", {"PartitionKey": "p", "RowKey": "a"}),
                             ("delete", {"PartitionKey": "p", "RowKey": "x"}),
                             ("upsert", {"PartitionKey": "p", "RowKey": "d", "n": 2})])
    assert _keys(table) == ["b", "c", "d"]


def test_more_than_a_transaction_holds_is_applied_whole_and_again_harmlessly(table: Table) -> None:
    operations = [("upsert", {"PartitionKey": "p", "RowKey": f"{i:03d}", "n": i}) for i in range(150)]
    table.submit_repeatable(operations)
    table.submit_repeatable(operations)
    assert len(_keys(table)) == 150
    table.submit_repeatable([("delete", {"PartitionKey": "p", "RowKey": f"{i:03d}"}) for i in range(150)])
    assert _keys(table) == []
