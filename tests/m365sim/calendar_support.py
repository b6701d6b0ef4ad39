"""Helpers for the simulator's calendar tests: Graph event bodies, reading a calendar view, a
delta round to its end, and waiting with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from conftest import Sim

WINDOW = {"startDateTime": "2026-12-01T00:00:00Z", "endDateTime": "2027-01-01T00:00:00Z"}


def event_body(subject: str = "Planning", start: str = "2026-12-01T10:00:00", end: str = "2026-12-01T11:00:00",
               zone: str = "UTC", **extra: Any) -> dict[str, Any]:
    return {"subject": subject, "body": {"contentType": "text", "content": f"About {subject}"},
            "start": {"dateTime": start, "timeZone": zone}, "end": {"dateTime": end, "timeZone": zone}, **extra}


def weekly(days: list[str], count: int, start_date: str = "2026-12-01") -> dict[str, Any]:
    return {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": days, "firstDayOfWeek": "sunday"},
            "range": {"type": "numbered", "startDate": start_date, "numberOfOccurrences": count}}


def create(sim: Sim, token: str, mailbox: str, **fields: Any) -> dict[str, Any]:
    response = sim.graph("POST", f"users/{mailbox}/events", token, json=event_body(**fields))
    assert response.status_code == 201, response.text
    return response.json()


def view(sim: Sim, token: str, mailbox: str, window: dict[str, str] | None = None,
         headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every page of the mailbox's calendarView for the window."""
    items: list[dict[str, Any]] = []
    url: str | None = f"users/{mailbox}/calendarView"
    params: dict[str, str] | None = window or WINDOW
    while url:
        response = sim.graph("GET", url, token, params=params, headers=headers or {})
        assert response.status_code == 200, response.text
        items.extend(response.json()["value"])
        url, params = response.json().get("@odata.nextLink"), None
    return items


def delta_round(sim: Sim, token: str, url: str, page_size: int = 10,
                params: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], str, int]:
    """Follow nextLinks to the deltaLink: (items, deltaLink, pages)."""
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        response = sim.graph("GET", url, token, params=params,
                             headers={"Prefer": f"odata.maxpagesize={page_size}"})
        assert response.status_code == 200, response.text
        body = response.json()
        items.extend(body["value"])
        pages += 1
        params = None
        if "@odata.deltaLink" in body:
            assert "@odata.nextLink" not in body
            return items, body["@odata.deltaLink"], pages
        url = body["@odata.nextLink"]


def wait_for(condition: Callable[[], Any], timeout: float = 15.0, message: str = "condition") -> Any:
    """Poll `condition` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        time.sleep(0.05)
