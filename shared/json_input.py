"""The one reader of JSON that came from outside: request bodies (admin API, Graph's webhooks).

Owns turning untrusted bytes into a JSON object or a domain error: anything that is not a
usable JSON document — malformed, not UTF-8/16/32, nested deeper than the parser's recursion
limit, an integer past Python's digit limit, `NaN`/`Infinity` (not JSON) — is `Invalid`, a
body over its size limit `TooLarge`. It never lets a parser exception escape (a stray
`RecursionError` is a 500 with a stack trace) and never decides what the object must hold.
"""

from __future__ import annotations

import json
from typing import Any

from shared.errors import Invalid, TooLarge

MAX_JSON_BODY_BYTES = 1024 * 1024


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def parse_json_object(body: bytes | str | None, *, what: str = "the body",
                      max_bytes: int = MAX_JSON_BODY_BYTES) -> dict[str, Any]:
    """The JSON object `body` holds; `Invalid` for anything else, `TooLarge` over `max_bytes`."""
    raw = body or b""
    if len(raw) > max_bytes:
        raise TooLarge(f"{what} is larger than {_size(max_bytes)}")
    try:
        # RecursionError: `[` x 200,000 exhausts the C scanner's recursion guard; ValueError
        # covers JSONDecodeError, UnicodeDecodeError and the int digit limit (CVE-2020-10735).
        value = json.loads(raw, parse_constant=_not_json)
    except (ValueError, RecursionError):
        raise Invalid(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise Invalid(f"{what} must be a JSON object")
    return value


def _size(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit % (1024 * 1024) == 0 else f"{limit:,} bytes"
