"""The fast paths of `shared.storage._sdk` side by side with the SDK's own methods, against Azurite.

Transactions: the same writes, ETags and errors as `TableClient.submit_transaction`, all or
nothing. Queries: the same entities (values, OData types, ETags, Timestamps), the same pages
and continuation, the same errors as `TableClient.query_entities` / `list_entities`. Re-run
these when bumping azure-data-tables (the fast paths only run on the version they were checked on).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.data.tables import EdmType, EntityProperty, TableTransactionError, UpdateMode

from shared.storage._sdk import query_entities, scan, submit_transaction


@pytest.fixture
def table(app_context):
    client = app_context.storage.tables.create_table_if_not_exists(f"sdk{uuid.uuid4().hex[:12]}")
    yield client
    app_context.storage.tables.delete_table(client.table_name)


# --- transactions ---


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


# --- queries ---


def _every_type(key: str, row: str) -> dict:
    return {"PartitionKey": key, "RowKey": row, "text": "Zürich ✓ 'quoted'", "empty": "", "small": 7,
            "big": EntityProperty(2**40, EdmType.INT64), "ratio": 1.5,
            "whole_double": EntityProperty(2.0, EdmType.DOUBLE), "flag": False,
            "when": datetime(2026, 11, 26, 8, 30, 15, tzinfo=timezone.utc),
            "guid": uuid.UUID("12345678-1234-5678-1234-567812345678"), "raw": b"\x00\xffbytes"}


def _same(ours: list, sdk: list) -> None:
    assert [dict(entity) for entity in ours] == [dict(entity) for entity in sdk]
    assert [entity.metadata for entity in ours] == [entity.metadata for entity in sdk]
    assert [{name: type(value) for name, value in entity.items()} for entity in ours] == [
        {name: type(value) for name, value in entity.items()} for entity in sdk]


def test_entities_of_every_type_read_as_the_sdk_reads_them(table) -> None:
    for number in range(3):
        table.create_entity(_every_type("it's a partition", f"room+{number}@contoso.com"))
    table.create_entity({"PartitionKey": "other", "RowKey": "x", "text": "elsewhere"})
    query = "PartitionKey eq @key and small ge @least"
    parameters = {"key": "it's a partition", "least": 7}
    ours = list(query_entities(table, query, parameters=parameters))
    assert len(ours) == 3
    _same(ours, list(table.query_entities(query, parameters=parameters)))
    _same(list(scan(table, query, parameters=parameters)), list(table.query_entities(query, parameters=parameters)))
    _same(list(query_entities(table)), list(table.list_entities()))
    _same(list(scan(table)), list(table.list_entities()))
    select = ["RowKey", "big", "when"]
    _same(list(query_entities(table, query, parameters=parameters, select=select)),
          list(table.query_entities(query, parameters=parameters, select=select)))


def test_pages_and_continuation_are_the_sdks(table) -> None:
    for start in range(0, 250, 100):
        table.submit_transaction([("create", {"PartitionKey": "p", "RowKey": f"r{number:04d}", "n": number})
                                  for number in range(start, min(start + 100, 250))])
    ours = query_entities(table, "PartitionKey eq 'p'", results_per_page=100).by_page()
    sdk = table.query_entities("PartitionKey eq 'p'", results_per_page=100).by_page()
    sizes = []
    for our_page, sdk_page in zip(ours, sdk, strict=True):
        our_items, sdk_items = list(our_page), list(sdk_page)
        _same(our_items, sdk_items)
        sizes.append(len(our_items))
        assert ours.continuation_token == sdk.continuation_token
    assert sizes == [100, 100, 50]
    token = table.query_entities("PartitionKey eq 'p'", results_per_page=100).by_page()
    next(token)
    resumed = query_entities(table, "PartitionKey eq 'p'", results_per_page=100).by_page(
        continuation_token=token.continuation_token)
    assert [entity["n"] for entity in next(resumed)] == list(range(100, 200))
    _same(list(scan(table, "PartitionKey eq 'p'", page_size=100)), list(table.query_entities("PartitionKey eq 'p'")))
    stopped = scan(table, "PartitionKey eq 'p'", page_size=10)
    assert [next(stopped)["n"] for _ in range(15)] == list(range(15))
    stopped.close()  # a look-up that found its row: the page read ahead is dropped
    _same(list(scan(table, "PartitionKey eq 'p'", page_size=50)), list(table.list_entities()))


def test_a_missing_table_and_a_bad_filter_fail_as_the_sdk_fails(app_context) -> None:
    missing = app_context.storage.tables.get_table_client(f"missing{uuid.uuid4().hex[:12]}")
    with pytest.raises(ResourceNotFoundError):
        list(missing.list_entities())
    with pytest.raises(ResourceNotFoundError):
        list(query_entities(missing))
    with pytest.raises(ResourceNotFoundError):
        list(scan(missing))
    table = app_context.storage.tables.create_table_if_not_exists(f"query{uuid.uuid4().hex[:12]}")
    try:
        with pytest.raises(HttpResponseError) as sdk:
            list(table.query_entities("PartitionKey eq"))
        with pytest.raises(HttpResponseError) as ours:
            list(query_entities(table, "PartitionKey eq"))
        assert (type(ours.value), ours.value.status_code) == (type(sdk.value), sdk.value.status_code)
        with pytest.raises(HttpResponseError) as scanned:
            list(scan(table, "PartitionKey eq"))
        assert (type(scanned.value), scanned.value.status_code) == (type(sdk.value), sdk.value.status_code)
    finally:
        app_context.storage.tables.delete_table(table.table_name)
