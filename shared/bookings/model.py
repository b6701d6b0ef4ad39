"""A booking: one occurrence on a room's calendar, as the Bookings table keeps it and the API shows it.

Owns reading Graph's event JSON into a `Booking` — safely: an event without an end, with a time
zone it cannot place, or without an id is skipped with a reason, a 10 KB subject is cut short,
attendees are never kept — and the privacy rule: a private event keeps its times and organizer
only, never its subject. It never reads or writes storage.
https://learn.microsoft.com/graph/api/resources/event
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.models import iso

MAX_SUBJECT_LENGTH = 500
MAX_NAME_LENGTH = 256
PRIVATE_SUBJECT = "Private"
# The transactionId of every event this product creates starts with this.
TRANSACTION_PREFIX = "rcc-"
# Graph's sensitivity values that hide the subject (`personal` stays visible, as in Outlook).
PRIVATE_SENSITIVITIES = {"private", "confidential"}
# Table Storage keys may not hold these; Graph's ids are base64 and may.
_KEY_FORBIDDEN = set("/\\#?") | {chr(c) for c in range(32)} | {"\x7f"}
# Windows time zone names Graph may answer in when it ignores `Prefer: outlook.timezone`.
_WINDOWS_ZONES = {
    "UTC": "UTC", "GMT Standard Time": "Europe/London", "W. Europe Standard Time": "Europe/Berlin",
    "Romance Standard Time": "Europe/Paris", "Central Europe Standard Time": "Europe/Budapest",
    "Eastern Standard Time": "America/New_York", "Central Standard Time": "America/Chicago",
    "Mountain Standard Time": "America/Denver", "Pacific Standard Time": "America/Los_Angeles",
    "Singapore Standard Time": "Asia/Singapore", "Tokyo Standard Time": "Asia/Tokyo",
    "India Standard Time": "Asia/Kolkata", "AUS Eastern Standard Time": "Australia/Sydney",
    "China Standard Time": "Asia/Shanghai",
}


class Unreadable(ValueError):
    """An event this product cannot store; the message says why (it is logged, not raised further)."""


def row_key(event_id: str) -> str:
    """The RowKey of an event id: the id itself, or a hash of it when it holds a character keys cannot."""
    if event_id and len(event_id) <= 512 and not (set(event_id) & _KEY_FORBIDDEN):
        return event_id
    return "h-" + hashlib.sha256(event_id.encode("utf-8", "surrogatepass")).hexdigest()


def calendar_partition(account_id: str, email: str) -> str:
    """The PartitionKey of one calendar's bookings (account ids and addresses hold no `|`)."""
    return f"{account_id}|{email}"


@dataclass(frozen=True)
class Booking:
    account_id: str
    email: str
    booking_id: str  # Graph's event id (an occurrence's own id for a recurring series)
    start: str  # UTC, ISO 8601 with Z
    end: str
    time_zone: str  # the event's own zone, as Graph names it
    is_all_day: bool
    subject: str | None  # None for a private event
    is_private: bool
    organizer_name: str
    organizer_email: str
    show_as: str
    is_cancelled: bool
    event_type: str
    ical_uid: str
    series_master_id: str
    change_key: str
    transaction_id: str = ""
    # Who booked it through the bookings API (the room's own mailbox organises it in Exchange).
    booked_by_name: str = ""
    booked_by_email: str = ""
    # False from the moment the API wrote it until a delta round read it back from Graph.
    seen_by_sync: bool = True

    @property
    def blocks_the_room(self) -> bool:
        return not self.is_cancelled and self.show_as != "free"

    @property
    def created_by_connector(self) -> bool:
        """Made through the bookings API: its transactionId is one this product derived."""
        return self.transaction_id.startswith(TRANSACTION_PREFIX)

    def to_entity(self) -> dict[str, Any]:
        # Every field is a plain value: read them directly (`asdict` deep-copies each, per row).
        entity = {"PartitionKey": calendar_partition(self.account_id, self.email), "RowKey": row_key(self.booking_id),
                  **{name: getattr(self, name) for name in _ROW_FIELDS}}
        entity["subject"] = self.subject or ""
        return entity

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> Booking:
        account_id, _, email = str(entity["PartitionKey"]).partition("|")
        fields = {name: entity.get(name) for name in cls.__dataclass_fields__ if name not in ("account_id", "email")}
        for name in ("is_all_day", "is_private", "is_cancelled"):
            fields[name] = bool(fields[name])
        fields["seen_by_sync"] = bool(entity.get("seen_by_sync", True))
        for name, value in fields.items():
            if value is None:
                fields[name] = ""
        fields["subject"] = None if fields["is_private"] else (entity.get("subject") or "")
        return cls(account_id=account_id, email=email, **fields)

    def same_as(self, other: Booking | None) -> bool:
        return other is not None and self == other

    def to_api(self, space_id: str | None = None) -> dict[str, Any]:
        return {
            "id": self.booking_id,
            "calendar": {"account_id": self.account_id, "email": self.email},
            "space_id": space_id,
            "start": self.start,
            "end": self.end,
            "time_zone": self.time_zone,
            "is_all_day": self.is_all_day,
            "subject": PRIVATE_SUBJECT if self.is_private else self.subject,
            "is_private": self.is_private,
            "organizer": {"name": self.booked_by_name or self.organizer_name,
                          "email": self.booked_by_email or self.organizer_email},
            "show_as": self.show_as,
            "is_cancelled": self.is_cancelled,
            "type": self.event_type,
            "series_master_id": self.series_master_id or None,
            "ical_uid": self.ical_uid,
            "change_key": self.change_key,
            "created_by_connector": self.created_by_connector,
            "seen_by_sync": self.seen_by_sync,
        }


def booking_from_event(event: dict[str, Any], account_id: str, email: str) -> Booking:
    """The booking an event of `calendarView` is; `Unreadable` saying why when it cannot be one."""
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise Unreadable("the event has no id")
    all_day = bool(event.get("isAllDay"))
    start = _moment(event.get("start"), all_day, "start")
    end = _moment(event.get("end"), all_day, "end")
    if end < start:
        raise Unreadable(f"event {event_id[:40]} ends before it starts")
    sensitivity = str(event.get("sensitivity") or "normal").lower()
    private = sensitivity in PRIVATE_SENSITIVITIES
    organizer = ((event.get("organizer") or {}).get("emailAddress") or {}) if isinstance(
        event.get("organizer"), dict) else {}
    subject = event.get("subject") if isinstance(event.get("subject"), str) else ""
    start_zone = event.get("originalStartTimeZone") or (event.get("start") or {}).get("timeZone") or "UTC"
    return Booking(
        account_id=account_id, email=email, booking_id=event_id, start=iso(start) or "", end=iso(end) or "",
        time_zone=_text(start_zone, 100), is_all_day=all_day,
        subject=None if private else _text(subject, MAX_SUBJECT_LENGTH), is_private=private,
        organizer_name=_text(organizer.get("name"), MAX_NAME_LENGTH),
        organizer_email=_text(organizer.get("address"), MAX_NAME_LENGTH).lower(),
        show_as=_text(event.get("showAs") or "busy", 32), is_cancelled=bool(event.get("isCancelled")),
        event_type=_text(event.get("type") or "singleInstance", 32), ical_uid=_text(event.get("iCalUId"), 512),
        series_master_id=_text(event.get("seriesMasterId"), 512), change_key=_text(event.get("changeKey"), 256),
        transaction_id=_text(event.get("transactionId"), 256),
    )


def _text(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _moment(value: Any, all_day: bool, which: str) -> datetime:
    """A `dateTimeTimeZone` as a UTC moment. Asked for in UTC, Graph answers in UTC; a zone it
    answers in anyway is converted; an all-day event without a zone is taken as UTC."""
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise Unreadable(f"the event has no {which}")
    text = value["dateTime"].strip()
    head, _, fraction = text.partition(".")
    try:
        moment = datetime.fromisoformat(head if fraction else text.replace("Z", ""))
    except ValueError:
        raise Unreadable(f"the event's {which} {text[:40]!r} is not a date and time") from None
    if moment.tzinfo is not None:
        return moment.astimezone(UTC)
    zone_name = str(value.get("timeZone") or ("UTC" if all_day else ""))
    if not zone_name:
        raise Unreadable(f"the event's {which} has no time zone")
    try:
        zone = ZoneInfo(_WINDOWS_ZONES.get(zone_name, zone_name))
    except (ZoneInfoNotFoundError, ValueError):
        raise Unreadable(f"the event's {which} is in a time zone this product cannot place ({zone_name[:60]})") \
            from None
    return moment.replace(tzinfo=zone).astimezone(UTC)


# The columns of a booking row besides its keys (the calendar is the PartitionKey).
_ROW_FIELDS = tuple(name for name in Booking.__dataclass_fields__ if name not in ("account_id", "email"))
