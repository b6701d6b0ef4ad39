"""What every benchmark figure shares: the running system, a signed-in admin, sim tenants, seeding, timing.

Owns the bench's plumbing around one `devhost.stack.Stack`: an administrator session through
devhost's Easy Auth emulation, verified accounts taken through the product's real consent flow
against m365sim, Calendars rows seeded straight into the table (10,000 rows through the API
would measure the API, not the figure), firing a function through devhost's admin API, and
percentiles. It never asserts a timing and never changes product code or settings.
"""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from devhost.stack import Stack
from shared.calendars import Calendar
from shared.models import CalendarStatus, iso, utc_now
from shared.storage import StorageAccount, Table

ADMIN_USER = "bench.admin@contoso.onmicrosoft.com"


class BenchError(RuntimeError):
    """A figure could not be measured; the message says what went wrong."""


class ApiSession(requests.Session):
    """A session bound to devhost's base URL: `session.get("/api/health")` works."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.trust_env = False

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if isinstance(url, str) and url.startswith("/"):
            url = self.base_url + url
        kwargs.setdefault("timeout", 120)
        return super().request(method, url, *args, **kwargs)


def admin_session(stack: Stack, user: str = ADMIN_USER, roles: str = "administrator") -> ApiSession:
    """Signed in the way the browser is (devhost's dev sign-in): an administrator unless `roles` says
    otherwise (the workplace system signs in with the app role bookings.write)."""
    session = ApiSession(stack.base_url)
    response = session.post("/.auth/login/dev", data={"user": user, "roles": roles}, allow_redirects=False)
    if response.status_code != 302:
        raise BenchError(f"dev sign-in answered {response.status_code}: {response.text[:200]}")
    session.headers["X-Requested-With"] = "XMLHttpRequest"
    return session


@dataclass
class Bench:
    """The running system and the clients a figure uses."""

    stack: Stack
    admin: ApiSession
    storage: StorageAccount
    sim: requests.Session = field(default_factory=requests.Session)

    @classmethod
    def on(cls, stack: Stack) -> Bench:
        sim = requests.Session()
        sim.trust_env = False
        sim.verify = stack.ca_bundle or True
        return cls(stack=stack, admin=admin_session(stack),
                   storage=StorageAccount.from_connection_string(stack.storage_connection_string), sim=sim)

    @functools.cached_property
    def worker_processes(self) -> int:
        """devhost's language worker processes (each keeps its own caches and first-use costs)."""
        return self.stack.worker_processes()

    # --- m365sim ---

    def sim_call(self, method: str, path: str, **kwargs: Any) -> Any:
        if not self.stack.sim_url:
            raise BenchError("m365sim is not running")
        response = self.sim.request(method, self.stack.sim_url + path, timeout=300, **kwargs)
        if response.status_code >= 400:
            raise BenchError(f"m365sim {method} {path} answered {response.status_code}: {response.text[:300]}")
        return response.json() if response.content else None

    def new_tenant(self, rooms: int, **options: Any) -> dict[str, Any]:
        return self.sim_call("POST", "/_sim/tenants", json={"rooms": rooms, **options})

    def set_knobs(self, tenant_id: str, **knobs: Any) -> None:
        self.sim_call("PATCH", f"/_sim/tenants/{tenant_id}/knobs", json=knobs)

    def sim_requests(self, tenant_id: str, since: int = 0) -> list[dict[str, Any]]:
        return self.sim_call("GET", "/_sim/requests", params={"tenant": tenant_id, "since": str(since)})["value"]

    # --- the product ---

    def verified_account(self, rooms: int) -> dict[str, Any]:
        """A fresh sim tenant with `rooms` rooms, added as an account and taken through admin
        consent (the sim's consent page, then the product's callback): Account Verified."""
        tenant = self.new_tenant(rooms)
        added = self.admin.post("/api/accounts", json={"tenant_id": tenant["domain"]})
        if added.status_code != 201:
            raise BenchError(f"adding the account answered {added.status_code}: {added.text[:300]}")
        consent_url = added.json()["consent_url"]
        query = {key: values[0] for key, values in parse_qs(urlsplit(consent_url).query).items()}
        answered = self.sim.post(consent_url, data={**query, "username": tenant["admin"], "decision": "accept"},
                                 allow_redirects=False, timeout=60)
        if answered.status_code != 302:
            raise BenchError(f"the sim's consent page answered {answered.status_code}: {answered.text[:300]}")
        callback = self.admin.get(answered.headers["Location"], allow_redirects=False)
        outcome = parse_qs(urlsplit(callback.headers.get("Location", "")).query).get("consent", ["?"])[0]
        if outcome != "verified":
            raise BenchError(f"consent ended with {outcome!r}, not verified")
        return {"account_id": added.json()["account"]["id"], "tenant_id": tenant["id"], "domain": tenant["domain"],
                "rooms": [room if isinstance(room, str) else room.get("email") or room.get("emailAddress")
                          for room in tenant.get("rooms") or []]}

    def fire(self, function_name: str, timeout: float = 1800) -> dict[str, Any]:
        """Run a timer function now through devhost's admin API and wait for its outcome."""
        response = requests.post(f"{self.stack.base_url}/admin/functions/{function_name}", params={"wait": "true"},
                                 json={"input": ""}, timeout=timeout)
        if response.status_code != 200:
            raise BenchError(f"firing {function_name} answered {response.status_code}: {response.text[:300]}")
        return response.json()

    @property
    def calendars(self) -> Table:
        return self.storage.table("Calendars")

    def seed_calendars(self, account_id: str, emails: Iterable[str],
                       status: CalendarStatus = CalendarStatus.QUEUED) -> int:
        """Calendars rows written straight to the table in entity-group transactions."""
        now = iso(utc_now())
        reason = "waiting for the next connector run" if status is CalendarStatus.QUEUED else None
        return self.calendars.submit_in_batches(
            ("upsert", Calendar(account_id=account_id, email=email, status=status, status_reason=reason,
                                added_at=now, added_by="bench", updated_at=now).to_entity())
            for email in emails)

    def status_counts(self, account_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entity in self.calendars.query_all("PartitionKey eq @account", parameters={"account": account_id},
                                               select=["status"]):
            status = entity.get("status") or "added"
            counts[status] = counts.get(status, 0) + 1
        return counts


class Load:
    """CPU spent from construction to `text()`: by each process of the stack (with its
    children) and by the whole machine (all processes, from /proc/stat). It tells which part
    bounds a figure: the machine's cores, or one Python process's interpreter lock."""

    def __init__(self, stack: Stack) -> None:
        self._pids = {process.name: process.popen.pid for process in stack.processes}
        self._started = time.monotonic()
        self._machine = _machine_ticks()
        self._processes = {name: tree_cpu_seconds(pid) for name, pid in self._pids.items()}

    def text(self, units: int, unit: str) -> str:
        seconds = max(1e-9, time.monotonic() - self._started)
        parts = []
        for name, pid in self._pids.items():
            used = tree_cpu_seconds(pid) - self._processes[name]
            parts.append(f"{name} {1000 * used / max(units, 1):.1f} ms/{unit} ({used / seconds:.2f} cores)")
        end = _machine_ticks()
        if self._machine is not None and end is not None and end[1] > self._machine[1]:
            parts.append(f"machine {(end[0] - self._machine[0]) / (end[1] - self._machine[1]):.0%} busy")
        return "CPU: " + ", ".join(parts)


def _machine_ticks() -> tuple[int, int] | None:
    """(busy, total) jiffies of all cores; idle and iowait are not busy."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return total - fields[3] - fields[4], total


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants (0 for what has exited)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as children:
            return own + sum(tree_cpu_seconds(int(child)) for child in children.read().split())
    except (OSError, ValueError):
        return own


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (share in 0..1)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def poll(predicate: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = "a condition") -> Any:
    """Poll until `predicate` returns something truthy; BenchError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise BenchError(f"{what} was not reached within {timeout:.0f}s")
        time.sleep(interval)


def like_the_listener(work: Callable[[Any], Any], items: list[Any], batch_size: int, threshold: int) -> list[Any]:
    """`work(item)` for every item with the concurrency of devhost's queue listener
    (`devhost.queues.QueueListener`): `batch_size` more are started once no more than `threshold`
    are running. Results in order."""
    changed = threading.Condition()
    running = 0

    def finished(_: Any) -> None:
        nonlocal running
        with changed:
            running -= 1
            changed.notify_all()

    futures = []
    with ThreadPoolExecutor(max_workers=batch_size + threshold, thread_name_prefix="plain") as pool:
        for start in range(0, len(items), batch_size):
            with changed:
                while running > threshold:
                    changed.wait()
                batch = items[start:start + batch_size]
                running += len(batch)
            for item in batch:
                future = pool.submit(work, item)
                future.add_done_callback(finished)
                futures.append(future)
        return [future.result() for future in futures]
