"""A thin layer over `azure-data-tables`: ETag-guarded writes, pages, transactions.

Owns how the domain talks to Table Storage. It never decides business rules and
never hides a lost race: an ETag mismatch (HTTP 412) becomes
`ConcurrencyConflict`, an insert of an existing key becomes `Conflict`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, TableTransactionError, UpdateMode

from shared.errors import ConcurrencyConflict, Conflict, Invalid
from shared.json_input import parse_json_object
from shared.storage._sdk import query_entities, scan, submit_transaction

# Table Storage limits: an entity-group transaction holds at most 100 entities of
# one partition; a query page at most 1,000 entities.
# https://learn.microsoft.com/rest/api/storageservices/performing-entity-group-transactions
MAX_BATCH_SIZE = 100
MAX_PAGE_SIZE = 1000
# A $filter may hold at most 15 discrete comparisons; one is the PartitionKey.
# https://learn.microsoft.com/rest/api/storageservices/querying-tables-and-entities#supported-comparison-operators
KEYS_PER_FILTER = 14

Entity = dict[str, Any]
Operation = tuple[str, Mapping[str, Any]]
# What a transaction may do with an entity: replace it (`upsert`), merge into it (`upsert-merge`),
# replace or merge only if unchanged since read (`update`, `update-merge`: If-Match with the
# entity's `_etag`), create it (fails if the key is taken) or delete it.
OPERATIONS = ("create", "upsert", "upsert-merge", "update", "update-merge", "delete")


@dataclass(frozen=True)
class Page:
    """One page of a query and the opaque token for the next one (None at the end)."""

    items: list[Entity]
    continuation_token: str | None


def etag_of(entity: Mapping[str, Any]) -> str | None:
    """The ETag Table Storage returned with an entity, if any."""
    metadata = getattr(entity, "metadata", None) or {}
    return metadata.get("etag") or entity.get("_etag")


def _plain(entity: TableEntity) -> Entity:
    """A dict copy carrying the ETag under `_etag`, so models can keep it."""
    plain = dict(entity)
    plain["_etag"] = entity.metadata.get("etag")
    return plain


def _for_write(entity: Mapping[str, Any]) -> Entity:
    return {key: value for key, value in entity.items() if not key.startswith("_")}


def encode_continuation(token: Any) -> str | None:
    if not token:
        return None
    raw = json.dumps(token, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continuation(token: str | None) -> Any:
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        decoded = parse_json_object(base64.urlsafe_b64decode(padded.encode()), what="the continuation token")
    except (ValueError, binascii.Error, Invalid):
        raise Invalid("the continuation token is malformed; start again from the first page") from None
    if not all(isinstance(v, str | None) for v in decoded.values()):
        raise Invalid("the continuation token is malformed; start again from the first page")
    return decoded


class Table:
    """One table. Rows come back as dicts with their ETag under `_etag`."""

    def __init__(self, client: TableClient) -> None:
        self.client = client
        self.name = client.table_name

    def create_if_missing(self) -> None:
        try:
            self.client.create_table()
        except ResourceExistsError:
            pass

    def get(self, partition_key: str, row_key: str) -> Entity | None:
        try:
            return _plain(self.client.get_entity(partition_key, row_key))
        except ResourceNotFoundError:
            return None

    def insert(self, entity: Mapping[str, Any], *, exists_message: str | None = None) -> Entity:
        """Create an entity; `Conflict` when the key is taken. Returns it with its ETag."""
        try:
            metadata = self.client.create_entity(_for_write(entity))
        except ResourceExistsError:
            raise Conflict(exists_message or "it already exists") from None
        return {**_for_write(entity), "_etag": metadata.get("etag")}

    def update(self, entity: Mapping[str, Any], *, etag: str | None = None) -> Entity:
        """Replace an entity only if it is unchanged since it was read (If-Match)."""
        etag = etag or entity.get("_etag")
        if not etag:
            raise ValueError("update needs the ETag the entity was read with")
        try:
            metadata = self.client.update_entity(
                _for_write(entity),
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceNotFoundError:
            raise ConcurrencyConflict("it was removed by someone else meanwhile") from None
        except HttpResponseError as error:
            if error.status_code == 412:
                raise ConcurrencyConflict("it was changed by someone else meanwhile; try again") from None
            raise
        return {**_for_write(entity), "_etag": metadata.get("etag")}

    def upsert(self, entity: Mapping[str, Any]) -> Entity:
        """Insert or replace unconditionally: only for rows nobody else edits."""
        metadata = self.client.upsert_entity(_for_write(entity), mode=UpdateMode.REPLACE)
        return {**_for_write(entity), "_etag": metadata.get("etag")}

    def delete(self, partition_key: str, row_key: str, *, etag: str | None = None) -> None:
        """Delete; with an ETag only if unchanged. Deleting what is gone is not an error."""
        try:
            if etag:
                self.client.delete_entity(
                    partition_key, row_key, etag=etag, match_condition=MatchConditions.IfNotModified
                )
            else:
                self.client.delete_entity(partition_key, row_key)
        except ResourceNotFoundError:
            return
        except HttpResponseError as error:
            if error.status_code == 412:
                raise ConcurrencyConflict("it was changed by someone else meanwhile; try again") from None
            raise

    def query_page(
        self,
        query_filter: str | None = None,
        *,
        parameters: Mapping[str, Any] | None = None,
        page_size: int = 100,
        continuation_token: str | None = None,
        select: list[str] | None = None,
    ) -> Page:
        """One server page. Table Storage may return an empty page with a token: callers
        that need `page_size` items use `query_filled_page`."""
        page_size = max(1, min(page_size, MAX_PAGE_SIZE))
        pager = query_entities(self.client, query_filter, parameters=dict(parameters or {}), select=select,
                               results_per_page=page_size).by_page(
            continuation_token=decode_continuation(continuation_token)
        )
        try:
            items = [_plain(entity) for entity in next(pager)]
        except StopIteration:
            return Page([], None)
        return Page(items, encode_continuation(pager.continuation_token))

    def query_filled_page(
        self,
        query_filter: str | None = None,
        *,
        parameters: Mapping[str, Any] | None = None,
        page_size: int = 100,
        continuation_token: str | None = None,
        select: list[str] | None = None,
        max_round_trips: int = 20,
    ) -> Page:
        """Up to `page_size` items, following continuation tokens across empty or short
        server pages, but never more than `max_round_trips` requests per call."""
        items: list[Entity] = []
        token = continuation_token
        for _ in range(max_round_trips):
            page = self.query_page(
                query_filter,
                parameters=parameters,
                page_size=page_size - len(items),
                continuation_token=token,
                select=select,
            )
            items.extend(page.items)
            token = page.continuation_token
            if token is None or len(items) >= page_size:
                break
        return Page(items, token)

    def query_all(
        self,
        query_filter: str | None = None,
        *,
        parameters: Mapping[str, Any] | None = None,
        select: list[str] | None = None,
    ) -> Iterator[Entity]:
        """Every matching entity, page by page (1,000 per round trip, the next one read ahead)."""
        for entity in scan(self.client, query_filter, parameters=dict(parameters or {}), select=select,
                           page_size=MAX_PAGE_SIZE):
            yield _plain(entity)

    def get_many(self, partition_key: str, row_keys: Iterable[str],
                 run: Callable[[list[Callable[[], Any]]], list[Any]] | None = None) -> dict[str, Entity]:
        """The rows of these keys in one partition that exist, by RowKey: up to `KEYS_PER_FILTER`
        keys a query, the queries run by `run` (a `Parallel`'s, side by side) or one after another.
        Such an `or` filter scans the partition rather than seeking; for a few keys that is cheaper
        than a round trip each."""
        keys = sorted(set(row_keys))
        calls = []
        for start in range(0, len(keys), KEYS_PER_FILTER):
            chunk = keys[start:start + KEYS_PER_FILTER]
            parameters = {"p": partition_key, **{f"k{i}": key for i, key in enumerate(chunk)}}
            # Spaces around the parentheses: the SDK finds @parameters by splitting the filter on spaces.
            query = "PartitionKey eq @p and ( " + " or ".join(f"RowKey eq @k{i}" for i in range(len(chunk))) + " )"
            calls.append(lambda query=query, parameters=parameters: list(self.query_all(query, parameters=parameters)))
        found = run(calls) if run is not None and len(calls) > 1 else [call() for call in calls]
        return {entity["RowKey"]: entity for entities in found for entity in entities}

    def submit_in_batches(self, operations: Iterable[Operation]) -> int:
        """Apply (kind, entity) operations (`OPERATIONS`) in entity-group transactions of at most
        100, one partition each. An "update" or "delete" of an entity carrying `_etag` applies
        only if it is unchanged (If-Match). Each batch is atomic; a failed batch raises with the
        operations of earlier batches applied, so callers make every operation idempotent.
        Returns the count."""
        return sum(len(self.transact(batch)) for batch in in_transactions(operations))

    def submit_repeatable(self, operations: Iterable[Operation]) -> None:
        """Apply "upsert" and "delete" operations (no ETags) in transactions of 100, one partition
        each. Both are repeatable, so a transaction refused because a row to delete was already gone
        (a removal raced this one) is applied one operation at a time, where that is no error."""
        for batch in in_transactions(operations):
            try:
                self.transact(batch)
            except ConcurrencyConflict:
                for kind, entity in batch:
                    if kind == "delete":
                        self.delete(entity["PartitionKey"], entity["RowKey"])
                    else:
                        self.upsert(entity)

    def transact(self, operations: Sequence[Operation]) -> list[Entity]:
        """One entity-group transaction (one partition, at most 100 operations): all apply or
        none. Returns each entity as written, with its new ETag."""
        try:
            replies = submit_transaction(self.client, [_transaction_item(op, entity) for op, entity in operations])
        except TableTransactionError as error:
            if error.status_code == 409 or getattr(error, "error_code", "") == "EntityAlreadyExists":
                raise Conflict("one of the rows already exists") from error
            if error.status_code in (404, 412):
                raise ConcurrencyConflict("one of the rows was changed meanwhile") from error
            raise
        return [{**_for_write(entity), "_etag": reply.get("etag")}
                for (_, entity), reply in zip(operations, replies, strict=True)]


def in_transactions(operations: Iterable[Operation]) -> list[list[Operation]]:
    """Operations grouped as entity-group transactions allow: one partition, at most 100 each."""
    by_partition: dict[str, list[Operation]] = {}
    for operation in operations:
        by_partition.setdefault(operation[1]["PartitionKey"], []).append(operation)
    return [batch[start:start + MAX_BATCH_SIZE] for batch in by_partition.values()
            for start in range(0, len(batch), MAX_BATCH_SIZE)]


def _transaction_item(operation: str, entity: Mapping[str, Any]) -> tuple[Any, ...]:
    if operation not in OPERATIONS:
        raise ValueError(f"unknown table operation {operation!r}")
    kind, _, merge = operation.partition("-")
    options: dict[str, Any] = {}
    if kind in ("upsert", "update"):
        options["mode"] = UpdateMode.MERGE if merge else UpdateMode.REPLACE
    if kind in ("update", "delete") and entity.get("_etag"):
        options.update(etag=entity["_etag"], match_condition=MatchConditions.IfNotModified)
    return (kind, _for_write(entity), options) if options else (kind, _for_write(entity))
