"""calendarView/delta in m365sim: the full first round paged to its deltaLink, incremental rounds
with changes and `@removed`, series changes, changes made during a round, and 410
syncStateNotFound for expired, unknown or malformed tokens."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from calendar_support import WINDOW, create, delta_round, event_body, weekly
from conftest import Sim


def _delta_url(mailbox: str) -> str:
    return f"users/{mailbox}/calendarView/delta"


def _removed(items: list[dict[str, Any]]) -> set[str]:
    return {i["id"] for i in items if "@removed" in i}


def _shown(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for i in items if "@removed" not in i}


def test_first_round_pages_every_occurrence_to_a_delta_link(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    singles = [create(sim, token, room, subject=f"s{d}", start=f"2026-12-{d:02d}T09:00:00",
                      end=f"2026-12-{d:02d}T10:00:00")["id"] for d in range(1, 18)]
    create(sim, token, room, subject="series", recurrence=weekly(["wednesday"], 4))
    create(sim, token, room, subject="outside", start="2027-03-01T09:00:00", end="2027-03-01T10:00:00")
    first = sim.graph("GET", _delta_url(room), token, params=WINDOW, headers={"Prefer": "odata.maxpagesize=5"})
    assert first.status_code == 200
    next_link = first.json()["@odata.nextLink"]
    assert next_link.startswith(f"{sim.base}/v1.0/users/{room}/calendarView/delta?$skiptoken=")
    assert set(parse_qs(urlsplit(next_link).query)) == {"$skiptoken"}  # the token carries the window
    assert "odata.maxpagesize=5" in first.headers["Preference-Applied"]
    items, delta_link, pages = delta_round(sim, token, _delta_url(room), page_size=5, params=WINDOW)
    assert pages == 5  # 21 occurrences, 5 a page
    assert "$deltatoken=" in delta_link and set(parse_qs(urlsplit(delta_link).query)) == {"$deltatoken"}
    assert len(items) == 21 and len({i["id"] for i in items}) == 21
    assert set(singles) <= {i["id"] for i in items}
    assert {i["type"] for i in items} == {"singleInstance", "occurrence"}  # never the series master
    default_items, _, default_pages = delta_round(sim, token, _delta_url(room), page_size=10, params=WINDOW)
    assert (len(default_items), default_pages) == (21, 3)


def test_incremental_round_has_changes_and_removals(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    kept = create(sim, token, room, subject="kept")
    renamed = create(sim, token, room, subject="old name")
    deleted = create(sim, token, room, subject="deleted")
    moved_out = create(sim, token, room, subject="moved out")
    _, delta_link, _ = delta_round(sim, token, _delta_url(room), params=WINDOW)
    empty, delta_link, _ = delta_round(sim, token, delta_link)
    assert empty == []
    sim.graph("PATCH", f"users/{room}/events/{renamed['id']}", token, json={"subject": "new name"})
    sim.graph("DELETE", f"users/{room}/events/{deleted['id']}", token)
    sim.graph("PATCH", f"users/{room}/events/{moved_out['id']}", token, json={
        "start": {"dateTime": "2027-02-01T10:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2027-02-01T11:00:00", "timeZone": "UTC"}})
    added = create(sim, token, room, subject="added")
    changes, next_link, _ = delta_round(sim, token, delta_link)
    assert _shown(changes).keys() == {renamed["id"], added["id"]}
    assert _shown(changes)[renamed["id"]]["subject"] == "new name"
    assert _removed(changes) == {deleted["id"], moved_out["id"]}
    removal = next(i for i in changes if i["id"] == deleted["id"])
    assert removal == {"@odata.type": "#microsoft.graph.event", "id": deleted["id"], "@removed": {"reason": "deleted"}}
    assert kept["id"] not in {i["id"] for i in changes}
    assert delta_round(sim, token, next_link)[0] == []


def test_series_changes_show_every_affected_occurrence(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    master = create(sim, token, room, subject="Series", recurrence=weekly(["monday"], 4))
    initial, delta_link, _ = delta_round(sim, token, _delta_url(room), params=WINDOW)
    occurrence_ids = [i["id"] for i in initial]
    assert len(occurrence_ids) == 4
    sim.graph("DELETE", f"users/{room}/events/{occurrence_ids[1]}", token)
    changes, delta_link, _ = delta_round(sim, token, delta_link)
    assert _removed(changes) == {occurrence_ids[1]}
    sim.graph("PATCH", f"users/{room}/events/{master['id']}", token, json={"subject": "Renamed series"})
    changes, delta_link, _ = delta_round(sim, token, delta_link)
    assert set(_shown(changes)) == {occurrence_ids[0], occurrence_ids[2], occurrence_ids[3]}
    assert {i["subject"] for i in _shown(changes).values()} == {"Renamed series"}
    sim.graph("DELETE", f"users/{room}/events/{master['id']}", token)
    changes, _, _ = delta_round(sim, token, delta_link)
    assert _removed(changes) == {occurrence_ids[0], occurrence_ids[2], occurrence_ids[3]}


def test_changes_during_a_round_reach_this_round_or_the_next(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    for day in range(1, 13):
        create(sim, token, room, subject=f"d{day}", start=f"2026-12-{day:02d}T09:00:00",
               end=f"2026-12-{day:02d}T10:00:00")
    page = sim.graph("GET", _delta_url(room), token, params=WINDOW, headers={"Prefer": "odata.maxpagesize=4"}).json()
    seen = {i["id"]: i for i in page["value"]}
    late = create(sim, token, room, subject="booked during the round", start="2026-12-20T09:00:00",
                  end="2026-12-20T10:00:00")
    first_seen = next(iter(seen))
    sim.graph("PATCH", f"users/{room}/events/{first_seen}", token, json={"subject": "renamed during the round"})
    rest, delta_link, _ = delta_round(sim, token, page["@odata.nextLink"], page_size=4)
    seen.update({i["id"]: i for i in rest})
    following, _, _ = delta_round(sim, token, delta_link)
    seen.update(_shown(following))
    assert late["id"] in seen
    assert seen[first_seen]["subject"] == "renamed during the round"
    assert len(seen) == 13


def test_expired_tokens_answer_410_until_a_new_round(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    room, other = tenant["rooms"][0], tenant["rooms"][1]
    for day in range(1, 4):
        create(sim, token, room, start=f"2026-12-{day:02d}T09:00:00", end=f"2026-12-{day:02d}T10:00:00")
    page = sim.graph("GET", _delta_url(room), token, params=WINDOW, headers={"Prefer": "odata.maxpagesize=2"}).json()
    _, delta_link, _ = delta_round(sim, token, _delta_url(room), params=WINDOW)
    _, other_link, _ = delta_round(sim, token, _delta_url(other), params=WINDOW)
    expired = sim.control("POST", f"tenants/{tenant['id']}/delta/expire", json={"mailboxes": [room]})
    assert expired.status_code == 200
    for url in (delta_link, page["@odata.nextLink"]):
        gone = sim.graph("GET", url, token)
        assert gone.status_code == 410
        assert gone.json()["error"]["code"] == "syncStateNotFound"
    assert sim.graph("GET", other_link, token).status_code == 200  # only the named mailbox
    assert len(delta_round(sim, token, _delta_url(room), params=WINDOW)[0]) == 3
    sim.control("POST", f"tenants/{tenant['id']}/delta/expire", json={})
    assert sim.graph("GET", other_link, token).status_code == 410


def test_unknown_or_malformed_tokens_answer_410(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    room, other = tenant["rooms"][0], tenant["rooms"][1]
    _, delta_link, _ = delta_round(sim, token, _delta_url(room), params=WINDOW)
    delta_token = parse_qs(urlsplit(delta_link).query)["$deltatoken"][0]
    for params in ({"$deltatoken": "garbage"}, {"$skiptoken": "bm90IGEgdG9rZW4"},
                   {"$deltatoken": delta_token[:-3] + "AAA"}):
        assert sim.graph("GET", _delta_url(room), token, params=params).status_code == 410
    # A token of one mailbox is unknown to another.
    assert sim.graph("GET", _delta_url(other), token, params={"$deltatoken": delta_token}).status_code == 410


def test_delta_needs_a_window_and_refuses_query_options(sim: Sim, tenant: dict[str, Any]) -> None:
    token = sim.token(tenant["id"])
    room = tenant["rooms"][0]
    assert sim.graph("GET", _delta_url(room), token).json()["error"]["code"] == "ErrorInvalidParameter"
    assert sim.graph("GET", _delta_url(room), token, params={**WINDOW, "$select": "subject"}).status_code == 400
    booked = sim.control("POST", f"tenants/{tenant['id']}/mailboxes/{room}/events", json=event_body())
    items, _, _ = delta_round(sim, token, f"users/{room}/calendar/calendarView/delta", params=WINDOW)
    assert [i["id"] for i in items] == [booked.json()["id"]]
