"""Events written as Graph's JSON: the full event resource for singles, masters, occurrences and
exceptions, and the `@removed` entry of a delta round
(learn.microsoft.com/graph/api/resources/event, learn.microsoft.com/graph/delta-query-events).

Owns property names, their order and Graph's formats (`dateTime` with seven fraction digits in
the zone `Prefer: outlook.timezone` asks for, UTC otherwise). It must never change an event.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any
from urllib.parse import quote

from m365sim.events import Occurrence, occurrence_ical_uid
from m365sim.state import format_graph_time
from m365sim.timezones import UTC, date_time_time_zone

BODY_PREVIEW_LENGTH = 255
NEVER = "0001-01-01T00:00:00Z"
_TAGS = re.compile(r"<[^>]+>")


def removed(item_id: str) -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.event", "id": item_id, "@removed": {"reason": "deleted"}}


def preview(body_type: str, content: str) -> str:
    text = html.unescape(_TAGS.sub(" ", content)) if body_type == "html" else content
    return " ".join(text.split())[:BODY_PREVIEW_LENGTH]


def render(item: Occurrence, zone: tuple[str, dt.tzinfo] | None) -> dict[str, Any]:
    """The event resource for one stored event or instance; `zone` is the preferred time zone."""
    event, fields = item.event, item.fields
    zone_name, tz = zone if zone is not None else ("UTC", UTC)
    is_instance = item.type in ("occurrence", "exception")
    ical_uid = occurrence_ical_uid(event.ical_uid, item.original_start) if item.original_start else event.ical_uid
    response_time = NEVER if event.response in ("organizer", "none") else format_graph_time(event.created)
    body = {
        "@odata.etag": f'W/"{item.change_key}"',
        "id": item.id,
        "createdDateTime": format_graph_time(event.created),
        "lastModifiedDateTime": format_graph_time(item.modified),
        "changeKey": item.change_key,
        "categories": list(fields.categories),
        "transactionId": event.transaction_id,
        "originalStartTimeZone": fields.start_zone,
        "originalEndTimeZone": fields.end_zone,
        "iCalUId": ical_uid,
        "reminderMinutesBeforeStart": 15,
        "isReminderOn": event.is_organizer,
        "hasAttachments": False,
        "subject": fields.subject,
        "bodyPreview": preview(fields.body_type, fields.body_content),
        "importance": fields.importance,
        "sensitivity": fields.sensitivity,
        "isAllDay": fields.is_all_day,
        "isCancelled": False,
        "isOrganizer": event.is_organizer,
        "responseRequested": True,
        "seriesMasterId": event.id if is_instance else None,
        "showAs": fields.show_as,
        "type": item.type,
        "webLink": "https://outlook.office365.com/owa/?itemid=" + quote(item.id, safe="") +
                   "&exvsurl=1&path=/calendar/item",
        "onlineMeetingUrl": None,
        "isOnlineMeeting": False,
        "onlineMeetingProvider": "unknown",
        "allowNewTimeProposals": True,
        "isDraft": False,
        "hideAttendees": False,
        "responseStatus": {"response": event.response, "time": response_time},
        "body": {"contentType": fields.body_type, "content": fields.body_content},
        "start": date_time_time_zone(fields.start, zone_name, tz),
        "end": date_time_time_zone(fields.end, zone_name, tz),
        "location": dict(fields.location) or {"displayName": "", "locationType": "default",
                                                "uniqueIdType": "unknown", "address": {}, "coordinates": {}},
        "locations": [dict(loc) for loc in fields.locations],
        "recurrence": event.recurrence.graph() if item.type == "seriesMaster" and event.recurrence else None,
        "attendees": [dict(a) for a in fields.attendees],
        "organizer": {"emailAddress": dict(event.organizer)},
        "onlineMeeting": None,
    }
    if is_instance and item.original_start is not None:
        body["originalStart"] = format_graph_time(item.original_start.timestamp()).replace(".0000000Z", "Z")
    return body
