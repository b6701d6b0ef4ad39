"""Time zones as Graph names them in events: Windows names ("Pacific Standard Time"), IANA names
("Europe/Berlin") and UTC, and Graph's `dateTimeTimeZone` wire format
(learn.microsoft.com/graph/api/resources/datetimetimezone).

Owns name resolution (a small Windows → IANA table, as in CLDR's windowsZones.xml), parsing a
`{dateTime, timeZone}` into an aware UTC instant and formatting an instant in a zone with seven
fraction digits. It must never guess: an unknown name is refused, not mapped to UTC.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

UTC = dt.UTC

# The Windows zones rooms are most often created in, mapped to their CLDR "001" territory zone.
WINDOWS_TO_IANA = {
    "utc": "UTC",
    "coordinated universal time": "UTC",
    "gmt standard time": "Europe/London",
    "greenwich standard time": "Atlantic/Reykjavik",
    "w. europe standard time": "Europe/Berlin",
    "central europe standard time": "Europe/Budapest",
    "romance standard time": "Europe/Paris",
    "e. europe standard time": "Europe/Chisinau",
    "pacific standard time": "America/Los_Angeles",
    "mountain standard time": "America/Denver",
    "central standard time": "America/Chicago",
    "eastern standard time": "America/New_York",
    "singapore standard time": "Asia/Singapore",
    "china standard time": "Asia/Shanghai",
    "tokyo standard time": "Asia/Tokyo",
    "india standard time": "Asia/Kolkata",
    "arabian standard time": "Asia/Dubai",
    "aus eastern standard time": "Australia/Sydney",
    "new zealand standard time": "Pacific/Auckland",
}


class UnknownTimeZone(ValueError):
    """A time zone name that is neither a known Windows name nor an IANA name."""


def resolve_zone(name: str) -> dt.tzinfo:
    """The zone for a Windows or IANA name (case-insensitive for Windows names)."""
    text = (name or "").strip()
    if not text:
        raise UnknownTimeZone(name)
    iana = WINDOWS_TO_IANA.get(text.lower(), text)
    if iana.upper() in ("UTC", "Z", "ETC/UTC", "GMT"):
        return UTC
    try:
        return zoneinfo.ZoneInfo(iana)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise UnknownTimeZone(name) from exc


def is_known_zone(name: str) -> bool:
    try:
        resolve_zone(name)
    except UnknownTimeZone:
        return False
    return True


def parse_local(value: Any) -> dt.datetime | None:
    """A `dateTime` string as Graph sends it ("2026-12-01T10:00:00" with up to 7 fraction digits),
    as a naive wall-clock time; an offset or Z in the text is honoured by returning an aware time."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    head, dot, tail = text.partition(".")
    if dot:
        # Python reads at most 6 fraction digits; Graph writes 7.
        digits = "".join(ch for ch in tail if ch.isdigit())
        text = f"{head}.{digits[:6]}{tail[len(digits):]}"
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def to_utc(local: dt.datetime, zone: dt.tzinfo) -> dt.datetime:
    """The instant of a wall-clock time in `zone` (an aware `local` keeps its own offset)."""
    if local.tzinfo is None:
        local = local.replace(tzinfo=zone)
    return local.astimezone(UTC)


def format_local(instant: dt.datetime, zone: dt.tzinfo) -> str:
    """Graph's event `dateTime`: wall-clock time in `zone`, seven fraction digits, no offset."""
    local = instant.astimezone(zone)
    return local.strftime("%Y-%m-%dT%H:%M:%S") + f".{local.microsecond:06d}0"


def date_time_time_zone(instant: dt.datetime, zone_name: str, zone: dt.tzinfo) -> dict[str, str]:
    return {"dateTime": format_local(instant, zone), "timeZone": zone_name}


def preferred_zone(prefer: dict[str, str]) -> tuple[str, dt.tzinfo] | None:
    """`Prefer: outlook.timezone="X"` as (name to echo, zone); None when absent or unknown, and
    Graph then answers in UTC."""
    name = prefer.get("outlook.timezone")
    if not name:
        return None
    try:
        return name, resolve_zone(name)
    except UnknownTimeZone:
        return None
