"""Calendar events as Outlook stores them: the fields a client sets, stored singles and series
masters (immutable versions), the occurrences and exceptions of a series, and their ids
(learn.microsoft.com/graph/api/resources/event).

Owns reading a Graph event body (POST or PATCH) into fields, Graph's validation answers, event
and occurrence ids (an occurrence id is derived from its master and its original start, so it is
stable), and expanding an event into the occurrences that overlap a window. It must never hold
state: mailbox.py keeps the versions, event_json.py writes them as Graph JSON.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from m365sim.recurrence import Recurrence, RecurrenceInvalid, parse_recurrence
from m365sim.timezones import UTC, UnknownTimeZone, parse_local, resolve_zone, to_utc

SENSITIVITIES = ("normal", "personal", "private", "confidential")
SHOW_AS = ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown")
IMPORTANCES = ("low", "normal", "high")
# One window of one series yields at most this many occurrences.
MAX_OCCURRENCES_PER_WINDOW = 5000
# Exchange item ids are base64 of a binary id that begins 00 03 24 00 ("AAMkA…").
_ID_PREFIX = b"\x00\x03\x24\x00"
_KIND_EVENT, _KIND_OCCURRENCE = 1, 2
_ICAL_PREFIX = "040000008200E00074C5B7101A82E008"


class EventInvalid(ValueError):
    """A request Graph refuses; `code` and `message` are Graph's error."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass(frozen=True)
class EventFields:
    """What a client sets on an event (or an exception of a series)."""

    subject: str
    body_type: str
    body_content: str
    start: dt.datetime  # aware, UTC
    end: dt.datetime
    start_zone: str  # the zone the client wrote the start in: originalStartTimeZone
    end_zone: str
    is_all_day: bool = False
    sensitivity: str = "normal"
    show_as: str = "busy"
    importance: str = "normal"
    location: Mapping[str, Any] = field(default_factory=dict)
    locations: tuple[Mapping[str, Any], ...] = ()
    attendees: tuple[Mapping[str, Any], ...] = ()
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExceptionVersion:
    fields: EventFields
    change_key: str
    modified: float


@dataclass(frozen=True)
class StoredEvent:
    """One version of a single event or a series master; a change stores a new version."""

    id: str
    ical_uid: str
    created: float
    modified: float
    change_key: str
    fields: EventFields
    recurrence: Recurrence | None
    organizer: Mapping[str, str]  # {"name", "address"}
    is_organizer: bool
    response: str  # the mailbox's own responseStatus.response
    transaction_id: str | None = None
    exceptions: Mapping[dt.datetime, ExceptionVersion] = field(default_factory=dict)
    cancelled: frozenset[dt.datetime] = frozenset()

    @property
    def type(self) -> str:
        return "seriesMaster" if self.recurrence is not None else "singleInstance"


@dataclass(frozen=True)
class Occurrence:
    """A stored event as a calendar view shows it: a single, or one instance of a series."""

    id: str
    type: str  # singleInstance, occurrence, exception or seriesMaster
    event: StoredEvent
    fields: EventFields
    original_start: dt.datetime | None
    change_key: str
    modified: float


def new_change_key() -> str:
    return base64.b64encode(b"\x10\x00\x00\x00" + os.urandom(16)).decode("ascii")


def new_event_id() -> str:
    return _encode(_ID_PREFIX + bytes([_KIND_EVENT]) + os.urandom(16))


def new_ical_uid() -> str:
    return _ICAL_PREFIX + "00000000" + "0" * 16 + "10000000" + os.urandom(16).hex().upper()


def occurrence_ical_uid(master_uid: str, original_start: dt.datetime) -> str:
    # Outlook writes the occurrence's date into bytes 16-19 of the series' global object id.
    stamp = f"{original_start.year:04X}{original_start.month:02X}{original_start.day:02X}"
    return master_uid[:32] + stamp + master_uid[40:]


def occurrence_id(master_id: str, original_start: dt.datetime) -> str:
    raw = _decode(master_id)
    if raw is None:
        raise ValueError(f"not an event id: {master_id}")
    return _encode(raw[:4] + bytes([_KIND_OCCURRENCE]) + raw[5:21] + struct.pack(">q", int(original_start.timestamp())))


def parse_event_id(text: str) -> tuple[str, dt.datetime | None] | None:
    """(master or single id, original start for an occurrence id), or None when malformed."""
    raw = _decode(text)
    if raw is None or raw[:4] != _ID_PREFIX:
        return None
    if raw[4] == _KIND_EVENT and len(raw) == 21:
        return text, None
    if raw[4] == _KIND_OCCURRENCE and len(raw) == 29:
        (seconds,) = struct.unpack(">q", raw[21:])
        try:
            original = dt.datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            return None
        return _encode(raw[:4] + bytes([_KIND_EVENT]) + raw[5:21]), original
    return None


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _decode(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


# -- reading a request body ---------------------------------------------------------------------

def read_fields(body: dict[str, Any], base: EventFields | None) -> EventFields:
    """The fields after applying `body` to `base` (a PATCH), or a new event's fields (base None:
    start and end are then required). Raises EventInvalid with Graph's code."""
    if base is None and (not isinstance(body.get("start"), dict) or not isinstance(body.get("end"), dict)):
        raise EventInvalid("ErrorPropertyValidationFailure", "At least one property failed validation: an event "
                           "needs start and end.")
    changes: dict[str, Any] = {}
    if "subject" in body:
        changes["subject"] = _text(body["subject"], "subject")
    if "body" in body:
        content = body["body"] if isinstance(body["body"], dict) else {}
        kind = str(content.get("contentType") or "text").lower()
        if kind not in ("text", "html"):
            raise EventInvalid("RequestBodyRead", f"Requested value '{content.get('contentType')}' was not found.")
        changes["body_type"], changes["body_content"] = kind, _text(content.get("content"), "body.content")
    for name, key, allowed in (("sensitivity", "sensitivity", SENSITIVITIES), ("showAs", "show_as", SHOW_AS),
                               ("importance", "importance", IMPORTANCES)):
        if name in body:
            if body[name] not in allowed:
                raise EventInvalid("RequestBodyRead", f"Requested value '{body[name]}' was not found.")
            changes[key] = body[name]
    if "isAllDay" in body:
        if not isinstance(body["isAllDay"], bool):
            raise EventInvalid("RequestBodyRead", "isAllDay must be a boolean.")
        changes["is_all_day"] = body["isAllDay"]
    for name, key in (("start", "start"), ("end", "end")):
        if name in body:
            changes[key], changes[f"{key}_zone"] = _instant(body[name], name)
    if "location" in body:
        changes["location"] = _location(body["location"])
        changes["locations"] = (changes["location"],) if changes["location"].get("displayName") else ()
    if "locations" in body and isinstance(body["locations"], list):
        changes["locations"] = tuple(_location(loc) for loc in body["locations"])
        if "location" not in body and changes["locations"]:
            changes["location"] = changes["locations"][0]
    if "attendees" in body:
        changes["attendees"] = tuple(_attendee(a) for a in body["attendees"] or [])
    if "categories" in body:
        changes["categories"] = tuple(str(c) for c in body["categories"] or [])
    if base is None:
        fields = EventFields(subject="", body_type="text", body_content="", start=changes.pop("start"),
                             end=changes.pop("end"), start_zone=changes.pop("start_zone"),
                             end_zone=changes.pop("end_zone"))
        fields = replace(fields, **changes)
    else:
        fields = replace(base, **changes)
    _check_times(fields)
    return fields


def read_recurrence(body: dict[str, Any], fields: EventFields) -> Recurrence | None:
    value = body.get("recurrence")
    if value is None:
        return None
    zone = resolve_zone(fields.start_zone)
    try:
        return parse_recurrence(value, fields.start.astimezone(zone).date(), fields.start_zone)
    except RecurrenceInvalid as exc:
        raise EventInvalid("ErrorPropertyValidationFailure", f"At least one property failed validation: {exc}.") \
            from exc


def _check_times(fields: EventFields) -> None:
    if fields.end < fields.start:
        raise EventInvalid("ErrorPropertyValidationFailure", "At least one property failed validation: the end of an "
                           "event must not be before its start.")
    if fields.is_all_day:
        for instant, zone_name in ((fields.start, fields.start_zone), (fields.end, fields.end_zone)):
            local = instant.astimezone(resolve_zone(zone_name))
            if (local.hour, local.minute, local.second, local.microsecond) != (0, 0, 0, 0):
                raise EventInvalid("ErrorPropertyValidationFailure", "At least one property failed validation: an "
                                   "all-day event must start and end at midnight.")
        if fields.end == fields.start:
            raise EventInvalid("ErrorPropertyValidationFailure", "At least one property failed validation: an "
                               "all-day event lasts at least one day.")


def _text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise EventInvalid("RequestBodyRead", f"{name} must be a string.")
    return value


def _instant(value: Any, name: str) -> tuple[dt.datetime, str]:
    if not isinstance(value, dict):
        raise EventInvalid("RequestBodyRead", f"{name} must be a dateTimeTimeZone object.")
    zone_name = value.get("timeZone") or "UTC"
    if not isinstance(zone_name, str):
        raise EventInvalid("RequestBodyRead", f"{name}.timeZone must be a string.")
    try:
        zone = resolve_zone(zone_name)
    except UnknownTimeZone as exc:
        raise EventInvalid("TimeZoneNotSupportedException", "A valid TimeZone value must be specified. The following "
                           f"TimeZone value is not supported: '{zone_name}'.") from exc
    local = parse_local(value.get("dateTime"))
    if local is None:
        raise EventInvalid("RequestBodyRead", f"Cannot convert the literal '{value.get('dateTime')}' to the expected "
                           "type 'Edm.DateTime'.")
    return to_utc(local, zone), zone_name


def _location(value: Any) -> dict[str, Any]:
    value = value if isinstance(value, dict) else {}
    name = str(value.get("displayName") or "")
    location = {"displayName": name, "locationType": value.get("locationType") or "default",
                "uniqueIdType": value.get("uniqueIdType") or ("private" if name else "unknown")}
    if value.get("locationUri") or value.get("locationEmailAddress"):
        location["locationUri"] = value.get("locationUri") or value.get("locationEmailAddress")
    if value.get("uniqueId") or name:
        location["uniqueId"] = value.get("uniqueId") or name
    location["address"] = value.get("address") or {}
    location["coordinates"] = value.get("coordinates") or {}
    return location


def _attendee(value: Any) -> dict[str, Any]:
    value = value if isinstance(value, dict) else {}
    email = value.get("emailAddress") if isinstance(value.get("emailAddress"), dict) else {}
    status = value.get("status") if isinstance(value.get("status"), dict) else {}
    return {"type": value.get("type") or "required",
            "status": {"response": status.get("response") or "none", "time": status.get("time") or
                       "0001-01-01T00:00:00Z"},
            "emailAddress": {"name": email.get("name") or email.get("address") or "",
                             "address": email.get("address") or ""}}


# -- expanding ----------------------------------------------------------------------------------

def as_occurrence(event: StoredEvent) -> Occurrence:
    """The stored event itself (a single, or the master of a series)."""
    return Occurrence(event.id, event.type, event, event.fields, None, event.change_key, event.modified)


def overlaps(fields: EventFields, lo: dt.datetime, hi: dt.datetime) -> bool:
    if fields.start == fields.end:
        return lo <= fields.start < hi
    return fields.start < hi and fields.end > lo


def occurrences(event: StoredEvent, lo: dt.datetime, hi: dt.datetime) -> list[Occurrence]:
    """What a calendar view of [lo, hi) shows of `event`: the single itself, or the series'
    occurrences and exceptions (cancelled ones left out, never the master)."""
    if event.recurrence is None:
        return [as_occurrence(event)] if overlaps(event.fields, lo, hi) else []
    found: list[Occurrence] = []
    duration = event.fields.end - event.fields.start
    for original in original_starts(event, lo - duration, hi):
        if original in event.cancelled or original in event.exceptions:
            continue
        fields = replace(event.fields, start=original, end=original + duration)
        if overlaps(fields, lo, hi):
            found.append(Occurrence(occurrence_id(event.id, original), "occurrence", event, fields, original,
                                    event.change_key, event.modified))
        if len(found) >= MAX_OCCURRENCES_PER_WINDOW:
            break
    for original, exception in event.exceptions.items():
        if original not in event.cancelled and overlaps(exception.fields, lo, hi):
            found.append(Occurrence(occurrence_id(event.id, original), "exception", event, exception.fields, original,
                                    exception.change_key, exception.modified))
    return found


def original_starts(event: StoredEvent, lo: dt.datetime, hi: dt.datetime) -> list[dt.datetime]:
    """Original starts of the series' instances from about `lo` up to (not including) `hi`."""
    recurrence = event.recurrence
    if recurrence is None:
        return []
    zone = resolve_zone(event.fields.start_zone)
    local_start = event.fields.start.astimezone(zone)
    starts: list[dt.datetime] = []
    from_date = lo.astimezone(zone).date() - dt.timedelta(days=1)
    for day in recurrence.dates(from_date):
        instant = to_utc(dt.datetime.combine(day, local_start.time()), zone)
        if instant >= hi:
            break
        if instant >= lo:
            starts.append(instant)
        if len(starts) >= MAX_OCCURRENCES_PER_WINDOW:
            break
    return starts


def find_occurrence(event: StoredEvent, original: dt.datetime) -> Occurrence | None:
    """The instance of a series with this original start, if the series has one (not cancelled)."""
    if event.recurrence is None or original in event.cancelled:
        return None
    exception = event.exceptions.get(original)
    if exception is not None:
        return Occurrence(occurrence_id(event.id, original), "exception", event, exception.fields, original,
                          exception.change_key, exception.modified)
    if original not in original_starts(event, original, original + dt.timedelta(seconds=1)):
        return None
    duration = event.fields.end - event.fields.start
    fields = replace(event.fields, start=original, end=original + duration)
    return Occurrence(occurrence_id(event.id, original), "occurrence", event, fields, original, event.change_key,
                      event.modified)
