"""A room calendar's events in Graph: the delta rounds of its calendar view, one slot's view, and writes.

Owns the requests of `calendarView/delta` — the window of the first request, `Prefer:
odata.maxpagesize` and `outlook.timezone="UTC"` (so every start and end comes in UTC), following
`@odata.nextLink` page by page to the final `@odata.deltaLink` — and what a `410 Gone` means
(the stored link is no good: start a full round); the calendarView of one slot; and creating,
changing and deleting an event in the room's calendar. It never stores anything and never
decides what an event means for a space.
https://learn.microsoft.com/graph/api/event-delta
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from shared.graph.client import GraphClient, GraphError, graph_time
from shared.graph.mailboxes import path_segment

# Graph pages a delta round as the caller prefers (up to 1,000 per page for events).
DELTA_PAGE_SIZE = 200
UTC_PREFERENCE = 'outlook.timezone="UTC"'


class DeltaExpired(Exception):  # noqa: N818 - a signal, not an error
    """Graph no longer knows the round's link (410, syncStateNotFound): start a full round."""


@dataclass
class DeltaPage:
    """One page of a round: the events (full) and the ids removed, and the link that follows."""

    events: list[dict[str, Any]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    next_link: str | None = None
    delta_link: str | None = None


def delta_pages(graph: GraphClient, tenant_id: str, mailbox: str, *, link: str | None = None,
                window: tuple[datetime, datetime] | None = None, page_size: int = DELTA_PAGE_SIZE,
                max_wait_seconds: float | None = None) -> Iterator[DeltaPage]:
    """The pages of one round: from `link` (a stored deltaLink: what changed since), or a full
    round over `window`. The last page carries the round's `delta_link`. Raises `DeltaExpired`
    when Graph answers 410, `GraphError` otherwise."""
    headers = {"Prefer": f"odata.maxpagesize={page_size}, {UTC_PREFERENCE}"}
    if link is not None:
        url, params = link, None
    elif window is not None:
        url = f"users/{path_segment(mailbox)}/calendarView/delta"
        params = {"startDateTime": graph_time(window[0]), "endDateTime": graph_time(window[1])}
    else:
        raise ValueError("a round starts from a delta link or a window")
    while url:
        try:
            body = graph.request(tenant_id, "GET", url, params=params, headers=headers,
                                 max_wait_seconds=max_wait_seconds) or {}
        except GraphError as error:
            if error.status == 410:
                raise DeltaExpired(error.message) from None
            raise
        page = DeltaPage(next_link=body.get("@odata.nextLink"), delta_link=body.get("@odata.deltaLink"))
        for item in body.get("value") or []:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                continue
            if "@removed" in item:
                page.removed.append(item["id"])
            else:
                page.events.append(item)
        yield page
        url, params = page.next_link or "", None


# --- one slot, and writes -------------------------------------------------------------------

# Graph lists a calendarView 10 to a page by default; a booking's slot rarely holds more.
VIEW_PAGE_SIZE = 100
VIEW_FIELDS = ("id,subject,start,end,showAs,isCancelled,isAllDay,sensitivity,organizer,transactionId,type,"
               "seriesMasterId,iCalUId,changeKey,originalStartTimeZone")


def calendar_view(graph: GraphClient, tenant_id: str, mailbox: str, start: datetime, end: datetime, *,
                  max_wait_seconds: float | None = None, timeout_seconds: float | None = None) -> list[dict[str, Any]]:
    """The room's occurrences overlapping [start, end) as Graph has them now, times in UTC."""
    headers = {"Prefer": f"odata.maxpagesize={VIEW_PAGE_SIZE}, {UTC_PREFERENCE}"}
    url: str | None = f"users/{path_segment(mailbox)}/calendarView"
    params: dict[str, str] | None = {"startDateTime": graph_time(start), "endDateTime": graph_time(end),
                                     "$select": VIEW_FIELDS}
    events: list[dict[str, Any]] = []
    while url:
        body = graph.request(tenant_id, "GET", url, params=params, headers=headers, max_wait_seconds=max_wait_seconds,
                             timeout_seconds=timeout_seconds) or {}
        events += [item for item in body.get("value") or [] if isinstance(item, dict)]
        url, params = body.get("@odata.nextLink"), None
    return events


def create_event(graph: GraphClient, tenant_id: str, mailbox: str, event: dict[str, Any], *,
                 max_wait_seconds: float | None = None, timeout_seconds: float | None = None) -> dict[str, Any]:
    """POST the event into the room's calendar. With a `transactionId`, a retry after a lost answer
    returns the event the first try created instead of a second one.
    https://learn.microsoft.com/graph/api/user-post-events"""
    return graph.request(tenant_id, "POST", f"users/{path_segment(mailbox)}/events", json=event,
                         headers={"Prefer": UTC_PREFERENCE}, max_wait_seconds=max_wait_seconds,
                         timeout_seconds=timeout_seconds) or {}


def patch_event(graph: GraphClient, tenant_id: str, mailbox: str, event_id: str, changes: dict[str, Any], *,
                max_wait_seconds: float | None = None, timeout_seconds: float | None = None) -> dict[str, Any]:
    return graph.request(tenant_id, "PATCH", f"users/{path_segment(mailbox)}/events/{quote(event_id, safe='')}",
                         json=changes, headers={"Prefer": UTC_PREFERENCE}, max_wait_seconds=max_wait_seconds,
                         timeout_seconds=timeout_seconds) or {}


def delete_event(graph: GraphClient, tenant_id: str, mailbox: str, event_id: str, *,
                 max_wait_seconds: float | None = None, timeout_seconds: float | None = None) -> bool:
    """Remove the event from the room's calendar (the room organises it); False when it was gone."""
    try:
        graph.request(tenant_id, "DELETE", f"users/{path_segment(mailbox)}/events/{quote(event_id, safe='')}",
                      max_wait_seconds=max_wait_seconds, timeout_seconds=timeout_seconds)
    except GraphError as error:
        if error.status == 404:
            return False
        raise
    return True
