"""`shared.storage.batch.submit_transaction` against Azurite: the same writes, ETags and
errors as the SDK's `TableClient.submit_transaction`, all or nothing."""

from __future__ import annotations

import uuid

import pytest
from azure.core import MatchConditions
from azure.data.tables import TableTransactionError, UpdateMode

from shared.storage._sdk import submit_transaction


@pytest.fixture
def table(app_context):
    client = app_context.storage.tables.create_table_if_not_exists(f"batch{uuid.uuid4().hex[:12]}")
    yield client
    app_context.storage.tables.delete_table(client.table_name)


def test_writes_apply_and_answer_the_etags_the_service_keeps(table) -> None:
    key = "it's a partition"
    created = submit_transaction(table, [
        ("create", {"PartitionKey": key, "RowKey": "room+1@contoso.com", "n": 5, "f": 1.5, "ok": True, "s": "Zürich"}),
        ("upsert", {"PartitionKey": key, "RowKey": "row two", "x": "y"}),
    ])
    stored = table.get_entity(key, "room+1@contoso.com")
    assert dict(stored) == {"PartitionKey": key, "RowKey": "room+1@contoso.com", "n": 5, "f": 1.5, "ok": True,
                            "s": "Zürich"}
    assert created[0]["etag"] == stored.metadata["etag"]
    updated = submit_transaction(table, [
        ("update", {"PartitionKey": key, "RowKey": "room+1@contoso.com", "n": 6},
         {"mode": UpdateMode.REPLACE, "etag": created[0]["etag"], "match_condition": MatchConditions.IfNotModified}),
        ("update", {"PartitionKey": key, "RowKey": "row two", "z": 1}, {"mode": UpdateMode.MERGE}),
    ])
    assert dict(table.get_entity(key, "room+1@contoso.com"))["n"] == 6
    assert dict(table.get_entity(key, "row two")) == {"PartitionKey": key, "RowKey": "row two", "x": "y", "z": 1}
    assert updated[0]["etag"] == table.get_entity(key, "room+1@contoso.com").metadata["etag"]


@pytest.mark.parametrize("ours", [True, False], ids=["ours", "sdk"])
def test_a_stale_etag_fails_the_whole_transaction_as_the_sdk_does(table, ours: bool) -> None:
    [first] = submit_transaction(table, [("create", {"PartitionKey": "p", "RowKey": "a", "n": 1})])
    submit_transaction(table, [("upsert", {"PartitionKey": "p", "RowKey": "a", "n": 2})])
    operations = [("create", {"PartitionKey": "p", "RowKey": "b"}),
                  ("update", {"PartitionKey": "p", "RowKey": "a", "n": 3},
                   {"mode": UpdateMode.REPLACE, "etag": first["etag"],
                    "match_condition": MatchConditions.IfNotModified})]
    with pytest.raises(TableTransactionError) as raised:
        submit_transaction(table, operations) if ours else table.submit_transaction(operations)
    assert (raised.value.status_code, raised.value.error_code, raised.value.index) == (
        412, "UpdateConditionNotSatisfied", 1)
    assert [e["RowKey"] for e in table.list_entities()] == ["a"]
    assert dict(table.get_entity("p", "a"))["n"] == 2


@pytest.mark.parametrize("ours", [True, False], ids=["ours", "sdk"])
def test_creating_what_exists_names_the_operation(table, ours: bool) -> None:
    submit_transaction(table, [("create", {"PartitionKey": "p", "RowKey": "taken"})])
    operations = [("create", {"PartitionKey": "p", "RowKey": "new"}),
                  ("create", {"PartitionKey": "p", "RowKey": "taken"})]
    with pytest.raises(TableTransactionError) as raised:
        submit_transaction(table, operations) if ours else table.submit_transaction(operations)
    assert (raised.value.status_code, raised.value.error_code, raised.value.index) == (409, "EntityAlreadyExists", 1)
    assert [e["RowKey"] for e in table.list_entities()] == ["taken"]


def test_a_hundred_operations_go_in_one_transaction(table) -> None:
    answers = submit_transaction(table, [("upsert", {"PartitionKey": "p", "RowKey": f"r{i:03d}", "i": i})
                                         for i in range(100)])
    assert len(answers) == 100 and all(a["etag"] for a in answers)
    assert len(list(table.list_entities())) == 100
