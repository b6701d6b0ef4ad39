"""What the sync figures share: connected rooms linked to spaces, sim bookings, and reading what sync did.

Owns the sync figures' set-up and witnesses. Rooms are made the way an administrator makes
them: a verified account (the product's consent flow against m365sim), its calendars written
`queued` into the Calendars table (as `bench.support.seed_calendars` does for the connect
figures), spaces imported and linked through the API (`PUT .../calendars/{email}/space`), then
`connector_run` fired until every calendar is `connected` with a real subscription in the sim;
the connector then asks for each room's first full round itself, which is waited for. The
set-up runs with m365sim's latency and limits off (it is not measured) and leaves them at the
figure's values. It also reads the Bookings rows with Azurite's `Timestamp` (when the write
that stored a row began), the rooms' sync states, and devhost's log lines of the sync's
functions. It never changes product code or settings and never asserts a timing.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.support import Bench, BenchError, percentile
from shared.bookings import SyncState
from shared.context import SYNC_MAX_WAIT_SECONDS
from shared.graph import GraphClient
from shared.graph.events import delta_pages
from shared.models import CalendarStatus
from shared.storage import CALENDAR_CHANGES_QUEUE

LATENCY_MS = 50
SPACE_IMPORT_CHUNK = 5000
LINKS_IN_FLIGHT = 8
# A link the API answers 409 ("changed by someone else meanwhile; try again") is sent again, as a client would.
LINK_ATTEMPTS = 5


@dataclass
class Rooms:
    account_id: str
    tenant_id: str
    domain: str
    emails: list[str]
    space_ids: list[str] = field(default_factory=list)


def graph_time(moment: datetime) -> dict[str, str]:
    return {"dateTime": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


def tomorrow() -> datetime:
    """The start of tomorrow (UTC): bookings from there on are inside the sync window (180 days ahead)."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)


BOOKERS = 4


@dataclass(frozen=True)
class Booked:
    """One booking the sim made: which one, where, its slot, its event id and when the sim answered."""

    position: int
    email: str
    start: datetime
    end: datetime
    event_id: str
    answered: float  # epoch seconds


def book_at_rate(bench: Bench, tenant_id: str, emails: list[str], total: int, rate: float, subject: str,
                 booked: Callable[[Booked], None]) -> None:
    """`total` one-hour bookings made through the sim's control API at `rate` per second, booking i
    in room i mod rooms (each room's next one two hours later), by `BOOKERS` threads; `booked` is
    called with each as soon as the sim answers 201."""
    base = tomorrow()
    positions = iter(range(total))
    lock = threading.Lock()
    started = time.monotonic()

    def book() -> None:
        while True:
            with lock:
                position = next(positions, None)
            if position is None:
                return
            delay = started + position / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            email = emails[position % len(emails)]
            start = base + timedelta(hours=2 * (position // len(emails)))
            response = bench.sim.post(f"{bench.stack.sim_url}/_sim/tenants/{tenant_id}/mailboxes/{email}/events",
                                      json={"subject": f"{subject} {position}", "start": graph_time(start),
                                            "end": graph_time(start + timedelta(hours=1))}, timeout=60)
            answered = time.time()
            if response.status_code != 201:
                raise BenchError(f"booking in the sim answered {response.status_code}: {response.text[:200]}")
            booked(Booked(position, email, start, start + timedelta(hours=1), response.json()["id"], answered))

    with ThreadPoolExecutor(max_workers=BOOKERS, thread_name_prefix="book") as bookers:
        for future in [bookers.submit(book) for _ in range(BOOKERS)]:
            future.result()


def plain_round(graph: GraphClient, tenant_id: str, mailbox: str, *, link: str | None = None,
                window: tuple[datetime, datetime] | None = None) -> tuple[list[dict[str, Any]], str | None]:
    """One delta round read through the product's Graph client, storing nothing: every page's events
    and the deltaLink it ends with (from `link`, or a full round over `window`)."""
    pages = list(delta_pages(graph, tenant_id, mailbox, link=link, window=window,
                             max_wait_seconds=SYNC_MAX_WAIT_SECONDS))
    return [event for page in pages for event in page.events], pages[-1].delta_link if pages else None


def connected_rooms(bench: Bench, rooms: int, *, with_spaces: bool, timeout: float = 600) -> Rooms:
    """`rooms` calendars of a fresh verified account, connected (real subscriptions in the sim),
    each linked to a space of its own when `with_spaces`, and each through its first full round."""
    account = bench.verified_account(rooms)
    found = Rooms(account["account_id"], account["tenant_id"], account["domain"],
                  [f"room-{i:05d}@{account['domain']}" for i in range(rooms)])
    bench.set_knobs(found.tenant_id, latency_ms=0, enforce_limits=False)
    bench.seed_calendars(found.account_id, found.emails)
    if with_spaces:
        found.space_ids = _link_spaces(bench, found)
    deadline = time.monotonic() + timeout
    while True:
        bench.fire("connector_run", timeout=timeout)
        counts = bench.status_counts(found.account_id)
        if counts.get(CalendarStatus.CONNECTED.value, 0) >= rooms:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"connecting {rooms} rooms for the sync figures stopped at {counts}")
        time.sleep(1)
    # The connector asked for each new subscription's first full round: wait until all have run.
    wait_for_states(bench, found, lambda state: bool(state.last_full_at), timeout=timeout,
                    what="every room's first full round")
    bench.set_knobs(found.tenant_id, latency_ms=LATENCY_MS, enforce_limits=True)
    return found


def _link_spaces(bench: Bench, rooms: Rooms) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    spaces = [{"id": f"sync-{tag}-{i:05d}", "building_id": f"sync-{tag}", "building_name": f"Sync {tag}",
               "floor": str(i // 100 + 1), "number": f"SY{tag}-{i:05d}", "name": f"Sync room {i:05d}"}
              for i in range(len(rooms.emails))]
    for start in range(0, len(spaces), SPACE_IMPORT_CHUNK):
        response = bench.admin.post("/api/spaces/import", json={"spaces": spaces[start:start + SPACE_IMPORT_CHUNK]})
        if response.status_code != 200:
            raise BenchError(f"importing spaces answered {response.status_code}: {response.text[:200]}")

    def link(position: int) -> None:
        for _ in range(LINK_ATTEMPTS):
            response = bench.admin.put(f"/api/accounts/{rooms.account_id}/calendars/{rooms.emails[position]}/space",
                                       json={"space_id": spaces[position]["id"]})
            if response.status_code != 409:  # the room's first sync round wrote the calendar meanwhile: again
                break
        if response.status_code != 200:
            raise BenchError(f"linking {rooms.emails[position]} answered {response.status_code}: "
                             f"{response.text[:200]}")

    with ThreadPoolExecutor(max_workers=LINKS_IN_FLIGHT) as pool:
        list(pool.map(link, range(len(spaces))))
    return [space["id"] for space in spaces]


def wait_for_quiet(bench: Bench, timeout: float = 900, quiet_seconds: float = 3) -> float:
    """Until `calendar-changes` holds no message (visible or running) and devhost has logged nothing
    for `quiet_seconds`: the work a figure left (a backlog, the sim's retried deliveries) must not
    be measured by the next one. Returns the seconds waited."""
    queue = bench.storage.queues.get_queue_client(CALENDAR_CHANGES_QUEUE)
    log = bench.stack.devhost_log
    started = time.monotonic()
    quiet_since, size = started, -1
    while True:
        now = time.monotonic()
        grown = log.stat().st_size if log is not None and log.is_file() else 0
        if queue.get_queue_properties().approximate_message_count or grown != size:
            quiet_since, size = now, grown
        elif now - quiet_since >= quiet_seconds:
            return now - started
        if now - started > timeout:
            raise BenchError(f"calendar-changes did not drain within {timeout:.0f} s")
        time.sleep(0.5)


def sync_states(bench: Bench, rooms: Rooms) -> list[SyncState]:
    return [SyncState.from_entity(entity) for entity in bench.storage.table("SyncStates").query_all(
        "PartitionKey eq @a", parameters={"a": rooms.account_id})]


def wait_for_states(bench: Bench, rooms: Rooms, done: Callable[[SyncState], bool], *, timeout: float, what: str,
                    interval: float = 0.5, seen: list[int] | None = None) -> float:
    """Poll the rooms' sync states until `done(state)` holds for every room; the seconds it took.
    `seen` collects, per poll, how many rounds held a live lease (were running)."""
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    while True:
        states = sync_states(bench, rooms)
        if seen is not None:
            seen.append(sum(1 for state in states if state.lease is not None and state.lease.is_live()))
        finished = sum(1 for state in states if done(state))
        if finished >= len(rooms.emails):
            return time.perf_counter() - started
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: {finished} of {len(rooms.emails)} rooms within {timeout:.0f} s")
        time.sleep(interval)


def booking_rows(bench: Bench, account_id: str) -> list[tuple[str, str, float]]:
    """(calendar email, booking id, Azurite's Timestamp as epoch seconds) of every Bookings row of the
    account. Bookings are partitioned `{account}|{email}`, so the account is one PartitionKey range."""
    client = bench.storage.table("Bookings").client
    found = []
    for entity in client.query_entities("PartitionKey gt @low and PartitionKey lt @high",
                                        parameters={"low": f"{account_id}|", "high": f"{account_id}}}"},
                                        select=["PartitionKey", "RowKey", "Timestamp"], results_per_page=1000):
        email = str(entity["PartitionKey"]).partition("|")[2]
        found.append((email, str(entity["RowKey"]), entity.metadata["timestamp"].timestamp()))
    return found


class DevhostLog:
    """devhost's log from a starting point: what `sync_changes` and the webhook did meanwhile."""

    OUTCOME = re.compile(r"calendar-changes message \S+: (.*)$")
    EXECUTED = re.compile(r"Executed 'Functions\.(\w+)' \((\w+), Id=\S+, Duration=(\d+)ms")

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.offset = path.stat().st_size if path is not None and path.is_file() else 0

    def text(self) -> str:
        if self.path is None or not self.path.is_file():
            return "devhost log not found"
        with self.path.open(encoding="utf-8", errors="replace") as log:
            log.seek(self.offset)
            lines = log.read().splitlines()
        outcomes: Counter[str] = Counter()
        durations: dict[str, list[float]] = {}
        discarded = sum(1 for line in lines if "Connection pool is full, discarding connection" in line)
        for line in lines:
            if found := self.OUTCOME.search(line):
                outcomes[_kind_of(found.group(1))] += 1
            elif found := self.EXECUTED.search(line):
                durations.setdefault(found.group(1), []).append(float(found.group(3)))
        parts = [f"{count} {outcome}" for outcome, count in outcomes.most_common()]
        for name in ("notifications", "sync_changes"):
            values = durations.get(name) or []
            if values:
                parts.append(f"{name} {len(values)} runs, p50 {percentile(values, 0.5):.0f} ms, "
                             f"p95 {percentile(values, 0.95):.0f} ms")
        if discarded:
            parts.append(f"{discarded:,} storage connections discarded (urllib3: connection pool is full)")
        return "devhost: " + "; ".join(parts) if parts else "devhost: no sync lines logged"


def _kind_of(outcome: str) -> str:
    """"synced (full: +50 ~0 -0)" -> "full rounds"; "8 rooms: 8 synced" -> "messages of 8 rooms";
    "deferred (throttled)" -> "deferred (throttled)"."""
    if outcome.startswith("synced ("):
        return outcome[len("synced ("):].split(":")[0] + " rounds"
    if (rooms := re.fullmatch(r"(\d+) rooms: .*", outcome)) is not None:
        return f"messages of {rooms.group(1)} rooms"
    return outcome
