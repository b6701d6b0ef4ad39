"""What a booking request from the workplace system may ask, checked before anything is written.

Owns the rules of a booking's slot (ISO 8601 with an offset, end after start, at most
`MAX_BOOKING_HOURS`, inside the sync window), its subject and organizer, the caller's
`Idempotency-Key`, and the `transactionId` derived from it that makes Graph's create exactly
once. It never reads storage or Graph.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.bookings.model import TRANSACTION_PREFIX
from shared.bookings.service import parse_range
from shared.errors import Invalid
from shared.identifiers import normalise_email

MAX_SUBJECT_LENGTH = 255
MAX_NAME_LENGTH = 256
MAX_KEY_LENGTH = 128


@dataclass(frozen=True)
class BookingRequest:
    start: datetime
    end: datetime
    subject: str
    organizer_name: str
    organizer_email: str


def transaction_id(calendar_key: str, idempotency_key: str) -> str:
    """Graph's transactionId for this caller's key on this room: the same key, the same id."""
    digest = hashlib.sha256(f"{calendar_key}\n{idempotency_key}".encode()).hexdigest()[:40]
    return f"{TRANSACTION_PREFIX}{digest}"


def idempotency_key(value: str | None) -> str:
    if value is None or not value.strip():
        raise Invalid("send an Idempotency-Key header (a unique value per booking, the same on every retry)")
    text = value.strip()
    if len(text) > MAX_KEY_LENGTH or not text.isascii() or not text.isprintable():
        raise Invalid(f"the Idempotency-Key must be at most {MAX_KEY_LENGTH} printable ASCII characters")
    return text


def parse_booking(body: dict[str, Any], *, max_hours: int, window: tuple[datetime, datetime],
                  partial: bool = False, current: BookingRequest | None = None) -> BookingRequest:
    """A new booking (all of start, end, subject, organizer), or with `partial` the changes to
    `current` (any of start, end, subject)."""
    unknown = sorted(set(body) - {"start", "end", "subject", "organizer"})
    if unknown:
        raise Invalid(f"unknown field {unknown[0][:40]!r}: a booking has start, end, subject and organizer")
    if partial and current is not None:
        if "organizer" in body:
            raise Invalid("a booking's organizer cannot be changed; cancel it and book again")
        start_text = body.get("start", _text(current.start))
        end_text = body.get("end", _text(current.end))
    else:
        start_text, end_text = body.get("start"), body.get("end")
    if not isinstance(start_text, str) or not isinstance(end_text, str):
        raise Invalid("start and end are required, as ISO 8601 with an offset such as 2026-12-01T09:00:00+01:00")
    start, end = parse_range(start_text, end_text)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end - start > timedelta(hours=max_hours):
        raise Invalid(f"a booking lasts at most {max_hours} hours")
    if start < window[0] or end > window[1]:
        raise Invalid(f"book between {_text(window[0])} and {_text(window[1])}: this product keeps the rooms' "
                      "calendars for that window")
    subject = body.get("subject", current.subject if current else None)
    if not isinstance(subject, str) or not subject.strip():
        raise Invalid("subject is required")
    subject = " ".join(subject.split())
    if len(subject) > MAX_SUBJECT_LENGTH or not subject.isprintable():
        raise Invalid(f"subject must be printable text of at most {MAX_SUBJECT_LENGTH} characters")
    if current is not None and partial:
        name, email = current.organizer_name, current.organizer_email
    else:
        organizer = body.get("organizer")
        if not isinstance(organizer, dict):
            raise Invalid('organizer is required: {"name": …, "email": …}, the person the booking is for')
        email = normalise_email(organizer.get("email"))
        name = organizer.get("name") if isinstance(organizer.get("name"), str) else ""
        name = " ".join(name.split())[:MAX_NAME_LENGTH]
        if name and not name.isprintable():
            raise Invalid("organizer name must be printable text")
    return BookingRequest(start=start, end=end, subject=subject, organizer_name=name, organizer_email=email)


def _text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
