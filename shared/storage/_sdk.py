"""The two fast paths around `azure-data-tables`: entity-group transactions and query pages.

Owns the only code that reaches into the SDK's private pieces. For transactions it writes and
reads the `$batch` multipart text itself (the SDK builds it with the `email` package and runs
its policies on every part); for queries it reads each page's JSON with `json.loads` (the SDK
walks every property through its generic deserializer). Everything else is the SDK's own: each
operation's request, the filter substitution, the client's pipeline (credential, retries,
transport), the page iterator, the entity converter and the error mapping. Same answers and
same errors as `TableClient.submit_transaction` / `query_entities` (docs/architecture.md says
what each saves).

The pin: the fast paths run only on the SDK version they were checked against side by side
(`tests/integration/test_storage_sdk.py`); on any other version this module uses the SDK's own
methods, so bumping azure-data-tables can make storage slower but never wrong. It must never be
imported from outside `shared/storage/`.
https://learn.microsoft.com/rest/api/storageservices/performing-entity-group-transactions
https://learn.microsoft.com/rest/api/storageservices/query-entities
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import azure.data.tables
from azure.core.exceptions import HttpResponseError
from azure.core.paging import ItemPaged
from azure.core.rest import HttpRequest, HttpResponse
from azure.data.tables import RequestTooLargeError, TableClient, TableEntity, TableTransactionError

# The SDK's own pieces: each operation's request builder (what `submit_transaction` uses), the
# filter substitution, page iterator, per-entity converter, error mapping and request builder of
# `query_entities`.
from azure.data.tables._constants import NEXT_PARTITION_KEY, NEXT_ROW_KEY
from azure.data.tables._deserialize import _convert_to_entity
from azure.data.tables._error import _process_table_error
from azure.data.tables._generated.operations._operations import build_table_query_entities_request
from azure.data.tables._models import TableEntityPropertiesPaged
from azure.data.tables._table_batch import TableBatchOperations
from azure.data.tables._table_client import _parameter_filter_substitution

# The version the fast paths were checked against; requirements.txt pins the same (a unit test
# holds the two together). Bumping the pin: re-run tests/integration/test_storage_sdk.py.
CHECKED_SDK_VERSION = "12.7.0"
FAST_PATHS = azure.data.tables.__version__ == CHECKED_SDK_VERSION

CRLF = "\r\n"


# --- entity-group transactions ---------------------------------------------------------------


@dataclass
class Part:
    """One operation's answer inside the batch response."""

    status: int
    headers: dict[str, str]
    body: bytes


def submit_transaction(client: TableClient, operations: Iterable[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """As `client.submit_transaction(operations)`: one transaction, all or nothing; returns each
    operation's metadata (its `etag`) in order; raises `TableTransactionError` naming the first
    operation that failed, `RequestTooLargeError` on 413, `HttpResponseError` otherwise."""
    if not FAST_PATHS:
        return [dict(reply) for reply in client.submit_transaction(list(operations))]
    endpoint = f"{client.scheme}://{client._primary_hostname}"  # noqa: SLF001 - as the SDK's method does
    batch = TableBatchOperations(config=client._client._config, endpoint=endpoint,  # noqa: SLF001
                                 table_name=client.table_name, is_cosmos_endpoint=client._cosmos_endpoint)  # noqa: SLF001
    for operation in operations:
        batch.add_operation(operation)
    if not batch.requests:
        return []
    boundary = f"batch_{uuid.uuid4()}"
    request = HttpRequest("POST", f"{endpoint}/$batch", headers={
        "x-ms-version": client.api_version, "DataServiceVersion": "3.0", "MaxDataServiceVersion": "3.0;NetFx",
        "Content-Type": f"multipart/mixed; boundary={boundary}", "Accept": "application/json",
    }, content=body_of(batch.requests, boundary, f"changeset_{uuid.uuid4()}"))
    # The client's own pipeline, as the SDK's method sends it (streamed: the body is multipart).
    response = client._client.send_request(request, stream=True)  # noqa: SLF001
    response.read()
    if response.status_code == 413:
        raise RequestTooLargeError(message="The transaction request was too large", response=response)
    if response.status_code != 202:
        raise HttpResponseError(message=f"the transaction was refused ({response.status_code})", response=response)
    parts = parse(response.headers.get("Content-Type", ""), response.content)
    failed = next((part for part in parts if not 200 <= part.status < 300), None)
    if failed is not None:
        raise _transaction_error(failed)
    if len(parts) != len(batch.requests):
        raise HttpResponseError(message=f"the transaction answered {len(parts)} parts for {len(batch.requests)} "
                                        "operations", response=response)
    return [{"etag": part.headers["etag"]} if "etag" in part.headers else {} for part in parts]


def body_of(requests: list[Any], batch_boundary: str, changeset_boundary: str) -> bytes:
    """The `$batch` body: one changeset holding each request as `application/http`."""
    chunks = [f"--{batch_boundary}{CRLF}Content-Type: multipart/mixed; boundary={changeset_boundary}{CRLF}{CRLF}"
              .encode()]
    for number, request in enumerate(requests):
        content = request.content
        content = content.encode("utf-8") if isinstance(content, str) else (content or b"")
        headers = {name: value for name, value in request.headers.items() if name.lower() != "content-length"}
        if content:
            headers["Content-Length"] = str(len(content))
        chunks.append((f"--{changeset_boundary}{CRLF}Content-Type: application/http{CRLF}"
                       f"Content-Transfer-Encoding: binary{CRLF}Content-ID: {number}{CRLF}{CRLF}"
                       f"{request.method} {request.url} HTTP/1.1{CRLF}"
                       + "".join(f"{name}: {value}{CRLF}" for name, value in headers.items()) + CRLF).encode())
        chunks.append(content + CRLF.encode())
    chunks.append(f"--{changeset_boundary}--{CRLF}{CRLF}--{batch_boundary}--{CRLF}".encode())
    return b"".join(chunks)


def parse(content_type: str, body: bytes) -> list[Part]:
    """The changeset's answers, in order. A failed transaction answers with one part."""
    batch_boundary = _boundary(content_type)
    parts: list[Part] = []
    for section in _sections(body, batch_boundary):
        head, _, rest = section.partition(b"\r\n\r\n")
        inner = _boundary(_header(head, "content-type") or "")
        if inner:
            for piece in _sections(rest, inner):
                parts.append(_http_part(piece))
        else:
            parts.append(_http_part(section))
    return parts


def _http_part(piece: bytes) -> Part:
    """`Content-Type: application/http` headers, a blank line, then an HTTP response."""
    _, _, message = piece.partition(b"\r\n\r\n")
    head, _, body = message.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise HttpResponseError(message=f"unreadable part in the transaction's answer: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Part(int(status_line[1]), headers, body.rstrip(b"\r\n"))


def _sections(body: bytes, boundary: str) -> list[bytes]:
    delimiter = f"--{boundary}".encode()
    sections = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        sections.append(chunk.strip(b"\r\n") if chunk.startswith(b"\r\n") else chunk)
    return sections


def _boundary(content_type: str) -> str:
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "boundary":
            return value.strip('"')
    return ""


def _header(head: bytes, name: str) -> str | None:
    for line in head.decode("utf-8", "replace").split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def _transaction_error(part: Part) -> TableTransactionError:
    """As the SDK reports it: status, service error code, message (which starts with the
    failed operation's index, "1:The specified entity already exists.")."""
    code, message = None, part.body.decode("utf-8", "replace")
    try:
        error = json.loads(part.body)["odata.error"]
        code, message = error.get("code"), error.get("message", {}).get("value", message)
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    failure = TableTransactionError(message=message)
    failure.status_code = part.status
    failure.error_code = code
    return failure


# --- queries ---------------------------------------------------------------------------------


def query_entities(client: TableClient, query_filter: str | None = None, *,
                   parameters: dict[str, Any] | None = None, select: list[str] | None = None,
                   results_per_page: int | None = None) -> ItemPaged[TableEntity]:
    """As `client.query_entities(query_filter, ...)`, or `client.list_entities(...)` without a filter."""
    if not FAST_PATHS:
        if query_filter:
            return client.query_entities(query_filter, parameters=parameters, select=select,
                                         results_per_page=results_per_page)
        return client.list_entities(select=select, results_per_page=results_per_page)
    return ItemPaged(functools.partial(_page, client), table=client.table_name, results_per_page=results_per_page,
                     **_query(query_filter, parameters, select), page_iterator_class=TableEntityPropertiesPaged)


def scan(client: TableClient, query_filter: str | None = None, *, parameters: dict[str, Any] | None = None,
         select: list[str] | None = None, page_size: int = 1000) -> Iterator[TableEntity]:
    """Every entity the query matches, as `query_entities` would give them, with the next page
    requested as soon as this one has arrived: the service answers it while this page's entities
    are read and used here, so a scan takes about as long as the service alone takes. Pages are
    still asked for one after another (each continuation names the next); one is read ahead."""
    if not FAST_PATHS:
        yield from query_entities(client, query_filter, parameters=parameters, select=select,
                                  results_per_page=page_size)
        return
    fetch = functools.partial(_fetch, client, table=client.table_name, top=page_size,
                              **_query(query_filter, parameters, select))
    ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-ahead")
    try:
        coming = ahead.submit(fetch)
        while True:
            try:
                response = coming.result()
            except HttpResponseError as error:
                _process_table_error(error)  # raises the SDK's own error, as its page iterator does
            following = {"next_partition_key": response.headers.get(NEXT_PARTITION_KEY),
                         "next_row_key": response.headers.get(NEXT_ROW_KEY)}
            more = following["next_partition_key"] or following["next_row_key"]
            if more:
                coming = ahead.submit(fetch, **following)
            for entity in _values(response):
                yield _convert_to_entity(entity)
            if not more:
                return
    finally:
        # A caller that stops early (a look-up that found its row) does not wait for the page read
        # ahead: a filtered page can take the service seconds. It is read, then dropped.
        ahead.shutdown(wait=False, cancel_futures=True)


def _query(query_filter: str | None, parameters: dict[str, Any] | None, select: list[str] | None) -> dict[str, Any]:
    """The filter with its parameters substituted and the `$select` text, as the SDK's method makes them."""
    return {"filter": _parameter_filter_substitution(parameters, query_filter) if query_filter else None,
            "select": ",".join(select) if select else None}


def _page(client: TableClient, *, table: str, top: int | None, select: str | None, filter: str | None,  # noqa: A002
          next_partition_key: str | None, next_row_key: str | None, cls: Any = None,
          use_location: Any = None) -> tuple[Any, SimpleNamespace, dict[str, str | None]]:
    """One page, answered as the generated operation answers the page iterator (with `cls`
    left out: the location mode is only for reading a secondary, which this project never does)."""
    response = _fetch(client, table=table, top=top, select=select, filter=filter,
                      next_partition_key=next_partition_key, next_row_key=next_row_key, use_location=use_location)
    headers = {NEXT_PARTITION_KEY: response.headers.get(NEXT_PARTITION_KEY),
               NEXT_ROW_KEY: response.headers.get(NEXT_ROW_KEY)}
    return use_location, SimpleNamespace(value=_values(response)), headers


def _fetch(client: TableClient, *, table: str, top: int | None, select: str | None, filter: str | None,  # noqa: A002
           next_partition_key: str | None = None, next_row_key: str | None = None,
           use_location: Any = None) -> HttpResponse:
    """One page's answer, through the client's pipeline; anything but 200 raises `HttpResponseError`."""
    generated = client._client  # noqa: SLF001 - as the SDK's own method does
    request = build_table_query_entities_request(
        table=table, top=top, select=select, filter=filter, next_partition_key=next_partition_key,
        next_row_key=next_row_key, version=generated._config.version)  # noqa: SLF001
    response = generated.send_request(request, use_location=use_location)
    if response.status_code != 200:
        raise HttpResponseError(response=response)
    return response


def _values(response: HttpResponse) -> list[dict[str, Any]]:
    return json.loads(response.content or b"{}").get("value") or []
