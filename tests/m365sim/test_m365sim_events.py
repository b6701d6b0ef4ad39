"""Events in m365sim's mailboxes through Graph: create and read back, Graph's formats and time
zones, validation, calendarView's window and paging, recurring series, exceptions and cancelled
occurrences, instances, cancel, and transactionId de-duplication."""

from __future__ import annotations

from typing import Any

import pytest
from calendar_support import WINDOW, create, event_body, view, weekly
from conftest import Sim


def test_created_event_is_in_the_calendar_view_in_graphs_shape(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    created = create(sim, token, room, subject="Board review", start="2026-12-01T10:00:00",
                     end="2026-12-01T11:30:00", zone="Pacific Standard Time", location={"displayName": "Orchard"})
    assert created["id"].startswith("AAMkA")
    assert created["type"] == "singleInstance" and created["seriesMasterId"] is None
    assert created["isOrganizer"] is True and created["isCancelled"] is False
    assert created["organizer"]["emailAddress"]["address"] == room
    assert created["responseStatus"]["response"] == "organizer"
    assert created["originalStartTimeZone"] == "Pacific Standard Time"
    assert created["start"] == {"dateTime": "2026-12-01T18:00:00.0000000", "timeZone": "UTC"}
    assert created["createdDateTime"].endswith("Z") and len(created["createdDateTime"]) == 28
    assert created["@odata.etag"] == f'W/"{created["changeKey"]}"'
    assert created["bodyPreview"] == "About Board review"
    assert created["locations"][0]["displayName"] == "Orchard"
    assert created["webLink"].startswith("https://outlook.office365.com/owa/?itemid=")
    assert {"iCalUId", "lastModifiedDateTime", "sensitivity", "showAs", "attendees", "body", "isAllDay"} <= set(created)
    (seen,) = view(sim, token, room)
    assert {k: seen[k] for k in ("id", "subject", "start", "end", "changeKey")} == {
        k: created[k] for k in ("id", "subject", "start", "end", "changeKey")}
    fetched = sim.graph("GET", f"users/{room}/events/{created['id']}", token).json()
    assert fetched["subject"] == "Board review"


@pytest.mark.parametrize(("zone", "local"), [("Pacific Standard Time", "2026-12-01T10:00:00.0000000"),
                                             ("Europe/Berlin", "2026-12-01T19:00:00.0000000"),
                                             ("Singapore Standard Time", "2026-12-02T02:00:00.0000000"),
                                             ("UTC", "2026-12-01T18:00:00.0000000")])
def test_prefer_outlook_timezone_answers_in_that_zone(sim: Sim, tenant: dict[str, Any], zone: str,
                                                      local: str) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    create(sim, token, room, start="2026-12-01T18:00:00", end="2026-12-01T19:00:00")
    response = sim.graph("GET", f"users/{room}/calendarView", token, params=WINDOW,
                         headers={"Prefer": f'outlook.timezone="{zone}"'})
    assert response.json()["value"][0]["start"] == {"dateTime": local, "timeZone": zone}
    assert response.headers["Preference-Applied"] == f'outlook.timezone="{zone}"'


def test_calendar_view_needs_its_time_window(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    for params in ({}, {"startDateTime": WINDOW["startDateTime"]}, {"endDateTime": "soon"}):
        response = sim.graph("GET", f"users/{tenant['rooms'][0]}/calendar/calendarView", token, params=params)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "ErrorInvalidParameter"
        assert "StartDateTime and EndDateTime" in response.json()["error"]["message"]


def test_calendar_view_pages_by_ten_or_as_asked_sorted_by_start(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    for day in range(23, 0, -1):  # created in reverse, listed by start
        create(sim, token, room, subject=f"day {day}", start=f"2026-12-{day:02d}T09:00:00",
               end=f"2026-12-{day:02d}T10:00:00")
    first = sim.graph("GET", f"users/{room}/calendarView", token, params=WINDOW).json()
    assert len(first["value"]) == 10 and "$skiptoken" in first["@odata.nextLink"].replace("%24", "$")
    assert "startDateTime" in first["@odata.nextLink"]
    everything = view(sim, token, room)
    assert [e["subject"] for e in everything] == [f"day {d}" for d in range(1, 24)]
    by_prefer = sim.graph("GET", f"users/{room}/calendarView", token, params=WINDOW,
                          headers={"Prefer": "odata.maxpagesize=7"}).json()
    assert len(by_prefer["value"]) == 7
    by_top = sim.graph("GET", f"users/{room}/calendarView", token, params={**WINDOW, "$top": "20",
                                                                           "$select": "subject,start"}).json()
    assert len(by_top["value"]) == 20 and set(by_top["value"][0]) <= {"id", "subject", "start", "@odata.etag"}
    narrow = view(sim, token, room, {"startDateTime": "2026-12-05T09:30:00Z", "endDateTime": "2026-12-06T09:00:00Z"})
    assert [e["subject"] for e in narrow] == ["day 5"]  # overlapping the window; day 6 starts as it ends


@pytest.mark.parametrize(("change", "code"), [
    ({"start": None}, "ErrorPropertyValidationFailure"),
    ({"end": {"dateTime": "2026-12-01T09:00:00", "timeZone": "UTC"}}, "ErrorPropertyValidationFailure"),
    ({"isAllDay": True}, "ErrorPropertyValidationFailure"),
    ({"start": {"dateTime": "2026-12-01T10:00:00", "timeZone": "Mars Standard Time"}},
     "TimeZoneNotSupportedException"),
    ({"sensitivity": "secret"}, "RequestBodyRead"),
    ({"recurrence": {"pattern": {"type": "weekly"}, "range": {"type": "noEnd"}}}, "ErrorPropertyValidationFailure"),
])
def test_invalid_events_are_refused(sim: Sim, tenant: dict[str, Any], change: dict[str, Any], code: str) -> None:
    token = sim.token(tenant["id"])
    body = {k: v for k, v in {**event_body(), **change}.items() if v is not None}
    response = sim.graph("POST", f"users/{tenant['rooms'][0]}/events", token, json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (400, code)
    assert sim.control("GET", f"tenants/{tenant['id']}/mailboxes/{tenant['rooms'][0]}/events").json()["value"] == []


def test_all_day_event_runs_midnight_to_midnight(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    created = create(sim, token, tenant["rooms"][0], start="2026-12-24T00:00:00", end="2026-12-26T00:00:00",
                     zone="Tokyo Standard Time", isAllDay=True)
    assert created["isAllDay"] is True
    assert created["start"]["dateTime"] == "2026-12-23T15:00:00.0000000"


def test_weekly_series_expands_and_a_deleted_occurrence_disappears(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    master = create(sim, token, room, subject="Standup", start="2026-12-01T09:00:00", end="2026-12-01T09:15:00",
                    zone="W. Europe Standard Time", recurrence=weekly(["tuesday", "thursday"], 6))
    assert master["type"] == "seriesMaster" and master["recurrence"]["pattern"]["daysOfWeek"] == ["tuesday",
                                                                                                   "thursday"]
    occurrences = view(sim, token, room)
    assert [o["start"]["dateTime"][:10] for o in occurrences] == [
        "2026-12-01", "2026-12-03", "2026-12-08", "2026-12-10", "2026-12-15", "2026-12-17"]
    assert {o["type"] for o in occurrences} == {"occurrence"}
    assert {o["seriesMasterId"] for o in occurrences} == {master["id"]}
    assert all(o["start"]["dateTime"][11:] == "08:00:00.0000000" for o in occurrences)  # 09:00 CET
    ids = [o["id"] for o in occurrences]
    assert len(set(ids)) == 6 and master["id"] not in ids
    assert [o["id"] for o in view(sim, token, room)] == ids  # stable across reads
    assert sim.graph("DELETE", f"users/{room}/events/{ids[2]}", token).status_code == 204
    assert [o["id"] for o in view(sim, token, room)] == ids[:2] + ids[3:]
    assert sim.graph("GET", f"users/{room}/events/{ids[2]}", token).status_code == 404
    listed = sim.graph("GET", f"users/{room}/events", token).json()["value"]
    assert [(e["id"], e["type"]) for e in listed] == [(master["id"], "seriesMaster")]


@pytest.mark.parametrize(("pattern", "dates"), [
    ({"type": "daily", "interval": 2}, ["2026-12-01", "2026-12-03", "2026-12-05"]),
    ({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31}, ["2026-12-31", "2027-01-31", "2027-02-28"]),
    ({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["monday"], "index": "first"},
     ["2026-12-07", "2027-01-04", "2027-02-01"]),
])
def test_other_patterns_expand(sim: Sim, tenant: dict[str, Any], pattern: dict[str, Any], dates: list[str]) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    recurrence = {"pattern": pattern, "range": {"type": "noEnd", "startDate": "2026-12-01"}}
    create(sim, token, room, recurrence=recurrence)
    found = view(sim, token, room, {"startDateTime": "2026-12-01T00:00:00Z", "endDateTime": "2027-03-01T00:00:00Z"})
    assert [o["start"]["dateTime"][:10] for o in found][:3] == dates
    far = view(sim, token, room, {"startDateTime": "2036-05-01T00:00:00Z", "endDateTime": "2036-06-01T00:00:00Z"})
    assert far  # a series without end reaches far windows


def test_end_date_range_stops_the_series(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    recurrence = {"pattern": {"type": "daily", "interval": 1},
                  "range": {"type": "endDate", "startDate": "2026-12-01", "endDate": "2026-12-04"}}
    create(sim, token, tenant["rooms"][0], recurrence=recurrence)
    assert len(view(sim, token, tenant["rooms"][0])) == 4


def test_patched_occurrence_becomes_an_exception_and_master_patch_changes_the_series(
        sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    master = create(sim, token, room, subject="Sync", recurrence=weekly(["tuesday"], 3))
    first, second, third = view(sim, token, room)
    moved = sim.graph("PATCH", f"users/{room}/events/{second['id']}", token,
                      json={"subject": "Sync (moved)", "start": {"dateTime": "2026-12-09T14:00:00", "timeZone": "UTC"},
                            "end": {"dateTime": "2026-12-09T15:00:00", "timeZone": "UTC"}})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["id"], moved.json()["type"]) == (second["id"], "exception")
    assert moved.json()["changeKey"] != second["changeKey"]
    after = view(sim, token, room)
    assert [(o["id"], o["type"], o["subject"]) for o in after] == [
        (first["id"], "occurrence", "Sync"), (second["id"], "exception", "Sync (moved)"),
        (third["id"], "occurrence", "Sync")]
    assert after[1]["start"]["dateTime"] == "2026-12-09T14:00:00.0000000"
    renamed = sim.graph("PATCH", f"users/{room}/events/{master['id']}", token, json={"subject": "Weekly sync"})
    assert renamed.json()["type"] == "seriesMaster"
    assert [o["subject"] for o in view(sim, token, room)] == ["Weekly sync", "Sync (moved)", "Weekly sync"]
    assert sim.graph("DELETE", f"users/{room}/events/{master['id']}", token).status_code == 204
    assert view(sim, token, room) == []


def test_instances_and_get_of_each_kind(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    master = create(sim, token, room, recurrence=weekly(["monday", "friday"], 4))
    instances = sim.graph("GET", f"users/{room}/events/{master['id']}/instances", token, params=WINDOW).json()["value"]
    assert len(instances) == 4 and {i["seriesMasterId"] for i in instances} == {master["id"]}
    one = sim.graph("GET", f"users/{room}/calendar/events/{instances[0]['id']}", token).json()
    assert (one["type"], one["seriesMasterId"]) == ("occurrence", master["id"])
    assert sim.graph("GET", f"users/{room}/events/{master['id']}", token).json()["type"] == "seriesMaster"
    malformed = sim.graph("GET", f"users/{room}/events/not-an-id", token)
    assert (malformed.status_code, malformed.json()["error"]["code"]) == (400, "ErrorInvalidIdMalformed")
    assert sim.graph("GET", f"users/{room}/events/{master['id'][:-4]}AAAA", token).status_code == 404


def test_cancel_only_by_the_organizer(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    own = create(sim, token, room)
    assert sim.graph("POST", f"users/{room}/events/{own['id']}/cancel", token,
                     json={"comment": "Room closed"}).status_code == 202
    booked = sim.control("POST", f"tenants/{tenant['id']}/mailboxes/{room}/events", json=event_body()).json()
    assert booked["isOrganizer"] is False
    refused = sim.graph("POST", f"users/{room}/events/{booked['id']}/cancel", token, json={})
    assert refused.status_code == 400
    assert "organizer" in refused.json()["error"]["message"]
    assert [e["id"] for e in view(sim, token, room)] == [booked["id"]]


def test_retried_create_with_the_same_transaction_id_returns_the_first_event(sim: Sim,
                                                                             tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    room, other = tenant["rooms"][0], tenant["rooms"][1]
    first = create(sim, token, room, transactionId="booking-42")
    again = create(sim, token, room, transactionId="booking-42", subject="a retry")
    assert (again["id"], again["subject"], again["transactionId"]) == (first["id"], "Planning", "booking-42")
    assert create(sim, token, other, transactionId="booking-42")["id"] != first["id"]  # per mailbox
    stored = sim.control("GET", f"tenants/{tenant['id']}/mailboxes/{room}/events").json()["value"]
    assert [(e["id"], e["transactionId"]) for e in stored] == [(first["id"], "booking-42")]
    sim.graph("DELETE", f"users/{room}/events/{first['id']}", token)
    assert create(sim, token, room, transactionId="booking-42")["id"] != first["id"]  # only live events count


def test_calendar_requests_without_a_calendar_role_are_insufficient_privileges(sim: Sim,
                                                                                tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    sim.knobs(tenant["id"], missing_permissions=["Calendars.ReadWrite"])
    for method, path in (("GET", "calendarView"), ("POST", "events")):
        response = sim.graph(method, f"users/{room}/{path}", token, params=WINDOW, json=event_body())
        assert (response.status_code, response.json()["error"]["code"]) == (403, "Authorization_RequestDenied")
