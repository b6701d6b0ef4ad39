"""Looking room mailboxes up in Graph: the mailbox, its calendar and its place, in one `$batch`.

Owns the requests of a look-up (three reads per room, six rooms to a `$batch` of at most 20)
and reading their answers into what the room is: a mailbox with its id, not a room at all,
or a read Graph refused (with the step it refused). It never decides what a refusal means for
a calendar (the connector classifies it) and never sends a request itself.
https://learn.microsoft.com/graph/json-batching
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from shared.graph.client import GraphError, batch_item_error

# A $batch holds at most 20 requests; each room needs three reads.
ROOMS_PER_BATCH = 6
# What Graph's $batch items answer with when they may succeed if sent again.
RETRYABLE_ITEM_STATUSES = {429, 500, 502, 503, 504}


@dataclass
class Mailbox:
    mailbox_id: str
    display_name: str | None


@dataclass
class NotARoom:
    """The address is a mailbox, but not one a room calendar can be connected to."""

    reason: str


@dataclass
class Refused:
    """Graph refused one of the reads (`error`), or did not answer it at all (`error` None)."""

    step: str
    error: GraphError | None


def path_segment(email: str) -> str:
    """An address as a Graph path segment (`@` and the address's own punctuation kept)."""
    return quote(email, safe="@!$&'*+=^_`{|}~-.")


def lookup_requests(emails: list[str]) -> dict[str, tuple[str, str]]:
    """The `$batch` requests for up to `ROOMS_PER_BATCH` rooms, keyed `{number}-{read}`."""
    requests: dict[str, tuple[str, str]] = {}
    for number, email in enumerate(emails):
        address = path_segment(email)
        requests[f"{number}-user"] = ("GET", f"/users/{address}?$select=id,displayName,mail,userPrincipalName")
        requests[f"{number}-calendar"] = ("GET", f"/users/{address}/calendar?$select=id")
        requests[f"{number}-place"] = ("GET", f"/places/{address}")
    return requests


def lookup_outcome(email: str, answers: dict[str, dict[str, Any]], number: int) -> Mailbox | NotARoom | Refused:
    """What the answers of room `number` say about it."""
    user, calendar, place = (answers.get(f"{number}-{read}") for read in ("user", "calendar", "place"))
    for item, step in ((user, "read the mailbox"), (calendar, "read the room's calendar")):
        if item is None:
            return Refused(step, None)
        if int(item.get("status") or 0) >= 400:
            return Refused(step, batch_item_error(item))
    user_body = (user or {}).get("body") or {}
    place_status = int((place or {}).get("status") or 0)
    place_body = (place or {}).get("body") or {}
    if place_status == 404 or (place_status < 400 and place_body.get("@odata.type", "").lower().endswith(
            "roomlist")):
        return NotARoom(f"{email} is not a room mailbox (it is a user or a room list): add the room's own address")
    display_name = (place_body.get("displayName") if place_status < 400 else None) or user_body.get("displayName")
    mailbox_id = str(user_body.get("id") or "")
    if not mailbox_id:
        return NotARoom(f"mailbox not found: Graph returned no id for {email}")
    return Mailbox(mailbox_id, display_name)
