"""Entity queries with each page's JSON read here.

`TableClient.query_entities` reads every page of up to 1,000 entities through the generated
client's generic model deserializer, which walks each property of each entity as an untyped
object: on this project's 2-core machine that was 60% of the time of a scan over 55,000
spaces (5 s of CPU of its 8.5 s). Here the SDK still builds each page's request (its own
filter substitution, `$select`, `$top`, continuation keys, headers), sends it through the
client's pipeline (credential, retries, logging, transport), pages with its own iterator and
turns each entity into a `TableEntity` with its own converter (OData types, ETag, Timestamp);
only the page's body is read with `json.loads`, which gives the same plain values the
generic deserializer does. Same entities, same continuation, same errors as the SDK's method.
`scan` reads a whole result and asks for the next page while it hands out this one.
https://learn.microsoft.com/rest/api/storageservices/query-entities
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

from azure.core.exceptions import HttpResponseError
from azure.core.paging import ItemPaged
from azure.core.rest import HttpResponse
from azure.data.tables import TableClient, TableEntity

# The SDK's own pieces of `query_entities`: filter substitution, the page iterator, the per-entity
# converter, the error mapping, the generated request builder.
from azure.data.tables._constants import NEXT_PARTITION_KEY, NEXT_ROW_KEY
from azure.data.tables._deserialize import _convert_to_entity
from azure.data.tables._error import _process_table_error
from azure.data.tables._generated.operations._operations import build_table_query_entities_request
from azure.data.tables._models import TableEntityPropertiesPaged
from azure.data.tables._table_client import _parameter_filter_substitution


def query_entities(client: TableClient, query_filter: str | None = None, *,
                   parameters: dict[str, Any] | None = None, select: list[str] | None = None,
                   results_per_page: int | None = None) -> ItemPaged[TableEntity]:
    """As `client.query_entities(query_filter, ...)`, or `client.list_entities(...)` without a filter."""
    return ItemPaged(functools.partial(_page, client), table=client.table_name, results_per_page=results_per_page,
                     **_query(query_filter, parameters, select), page_iterator_class=TableEntityPropertiesPaged)


def scan(client: TableClient, query_filter: str | None = None, *, parameters: dict[str, Any] | None = None,
         select: list[str] | None = None, page_size: int = 1000) -> Iterator[TableEntity]:
    """Every entity the query matches, as `query_entities` would give them, with the next page
    requested as soon as this one has arrived: the service answers it while this page's entities
    are read and used here, so a scan takes about as long as the service alone takes. Pages are
    still asked for one after another (each continuation names the next); one is read ahead."""
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
