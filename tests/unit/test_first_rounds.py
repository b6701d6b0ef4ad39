"""A connector run's new rooms get their first sync once the tenant's connecting is done, asked for
in messages of several rooms each."""

from __future__ import annotations

import json
from typing import Any

from shared.bookings import BookingSync
from shared.bookings.sync import ROOMS_PER_MESSAGE
from shared.calendars import Calendar
from shared.connector.claims import Claims
from shared.storage import Parallel


class Queue:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_message(self, content: str, **_: Any) -> None:
        self.sent.append(json.loads(content))


def rooms(account_id: str, count: int) -> list[Calendar]:
    return [Calendar(account_id=account_id, email=f"room-{n:02d}@{account_id}.example") for n in range(count)]


def test_rooms_subscribed_during_a_run_are_asked_for_per_account_when_asked() -> None:
    asked: list[list[Calendar]] = []
    claims = Claims(None, None, b"key", on_subscribed=asked.append)  # type: ignore[arg-type]
    claims.subscribed(rooms("a", 2))
    claims.subscribed(rooms("b", 1))
    assert asked == []  # nothing while the tenants connect
    claims.ask_first_rounds("a")
    assert [[c.email for c in batch] for batch in asked] == [["room-00@a.example", "room-01@a.example"]]
    claims.ask_first_rounds()
    assert [c.email for c in asked[1]] == ["room-00@b.example"]
    claims.ask_first_rounds()
    assert len(asked) == 2  # each room asked for once


def test_a_failing_ask_leaves_the_rooms_to_the_sweep_and_does_not_raise() -> None:
    def refuse(_: list[Calendar]) -> None:
        raise OSError("the queue is down")

    claims = Claims(None, None, b"key", on_subscribed=refuse)  # type: ignore[arg-type]
    claims.subscribed(rooms("a", 3))
    claims.ask_first_rounds("a")


def test_full_rounds_are_asked_for_in_messages_of_a_few_rooms_of_one_account() -> None:
    queue = Queue()
    sync = BookingSync(accounts=None, calendars=None, states=None, store=None, feed=None, rounds=None,  # type: ignore[arg-type]
                       queue=queue, parallel=Parallel(workers=2), days_back=1, days_ahead=180)  # type: ignore[arg-type]
    many = rooms("a", ROOMS_PER_MESSAGE * 2 + 1)
    asked = sync.request_resync(many + rooms("b", 2), "a new subscription")
    assert asked == ROOMS_PER_MESSAGE * 2 + 3
    by_account: dict[str, list[list[str]]] = {}
    for message in queue.sent:
        assert message["change_type"] == "resync" and message["room_email"] == message["rooms"][0]
        by_account.setdefault(message["account_id"], []).append(message["rooms"])
    assert sorted(len(batch) for batch in by_account["a"]) == [1, ROOMS_PER_MESSAGE, ROOMS_PER_MESSAGE]
    assert sorted(email for batch in by_account["a"] for email in batch) == [c.email for c in many]
    assert by_account["b"] == [["room-00@b.example", "room-01@b.example"]]
