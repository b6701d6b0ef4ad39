"""What the booking tests share: a connected room linked to a space of its own, bookings made in the
simulated mailbox "from Outlook", and reading them back through the bookings API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.helpers import wait_until
from tests.integration.connector_support import account_with_calendars, sim


def graph_time(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


def at(hours_from_now: float, minutes: int = 0) -> datetime:
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    return base + timedelta(hours=hours_from_now, minutes=minutes)


def linked_room(admin: Any, stack: Any, fire: Any, rooms: int = 1) -> dict[str, Any]:
    """A verified account with connected rooms, the first linked to a new space, synced once."""
    account = account_with_calendars(admin, stack, rooms=rooms)
    fire("connector_run")
    email = account["room_emails"][0]
    tag = uuid.uuid4().hex[:8]
    space = {"id": f"sync-{tag}", "building_id": "sync", "floor": "1", "number": f"SY-{tag}", "name": f"Sync {tag}"}
    assert admin.post("/api/spaces/import", json={"spaces": [space]}).status_code == 200
    linked = admin.put(f"/api/accounts/{account['account_id']}/calendars/{email}/space", json={"space_id": space["id"]})
    assert linked.status_code == 200, linked.text
    room = {**account, "email": email, "space_id": space["id"]}
    wait_until(lambda: (calendar_sync(admin, room) or {}).get("last_synced_at"), timeout=60,
               message="the first sync of a connected room never ran")
    return room


def calendar_sync(admin: Any, room: dict[str, Any]) -> dict[str, Any] | None:
    response = admin.get(f"/api/accounts/{room['account_id']}/calendars/{room['email']}")
    assert response.status_code == 200, response.text
    return response.json().get("sync")


def book(stack: Any, room: dict[str, Any], subject: str, start: datetime, end: datetime, **fields: Any) -> dict:
    """A booking made "from Outlook": the simulator stores it and notifies our webhook."""
    body = {"subject": subject, "start": graph_time(start), "end": graph_time(end), **fields}
    response = sim(stack, "POST", f"tenants/{room['tenant_id']}/mailboxes/{room['email']}/events", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def space_bookings(session: Any, room: dict[str, Any], start: datetime | None = None,
                   end: datetime | None = None) -> list[dict[str, Any]]:
    params = {"start": (start or datetime.now(UTC)).isoformat(),
              "end": (end or datetime.now(UTC) + timedelta(days=30)).isoformat()}
    response = session.get(f"/api/spaces/{room['space_id']}/bookings", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def wait_for_bookings(session: Any, room: dict[str, Any], check: Any, timeout: float = 60, **window: Any) -> list:
    """The space's bookings once `check(items)` holds."""
    found: list = []

    def ready() -> bool:
        nonlocal found
        found = space_bookings(session, room, **window)
        return bool(check(found))

    wait_until(ready, timeout=timeout, interval=0.3, message=f"bookings never matched; last seen {found}")
    return found


def counting_sync(stack: Any, context: Any) -> tuple[Any, list[tuple[str, str, str]]]:
    """The app's booking sync, built from the same parts over its real tables, with each request to
    them noted as (table, method, decoded URL) by the SDK's own hook."""
    from urllib.parse import unquote_plus

    from azure.data.tables import TableClient

    from shared.bookings import BookingStore, BookingSync, ChangeFeed, DeltaRounds, SyncStates
    from shared.calendars import CalendarRepository
    from shared.storage import Table

    made: list[tuple[str, str, str]] = []

    def table(name: str) -> Table:
        return Table(TableClient.from_connection_string(
            stack.storage_connection_string, name, raw_request_hook=lambda pipeline: made.append(
                (name, pipeline.http_request.method, unquote_plus(pipeline.http_request.url)))))

    sync = context.sync
    store = BookingStore(table("Bookings"), sync.parallel)
    feed = ChangeFeed(table("BookingChanges"))
    counted = BookingSync(
        accounts=sync.accounts, calendars=CalendarRepository(table("Calendars")),
        states=SyncStates(table("SyncStates"), sync.parallel), store=store, feed=feed,
        rounds=DeltaRounds(graph=sync.rounds.graph, store=store, feed=feed,
                           max_wait_seconds=sync.rounds.max_wait_seconds),
        queue=sync.queue, parallel=sync.parallel, days_back=sync.days_back, days_ahead=sync.days_ahead,
        round_pool=sync.leased.round_pool)
    return counted, made
