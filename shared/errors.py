"""Errors of the domain.

Raised by `shared/` and mapped to HTTP responses once, by class, in
`blueprints/http.py`. Messages are shown to administrators as they are, so they
say what went wrong in plain words and never contain a secret. They often quote the
input at fault; every message is bounded here, once, so none repeats a 5,000-character
id whole (to the caller, into a report or a log).
"""

from __future__ import annotations

import re

# What a message repeats of one word of input (an id, an email, a quoted value): enough to
# recognise it. A run of non-space characters this long is input, not the message's own prose.
MAX_QUOTED_LENGTH = 100
MAX_MESSAGE_LENGTH = 1000
_LONG_WORD = re.compile(rf"\S{{{MAX_QUOTED_LENGTH + 1},}}")


def bounded(message: str) -> str:
    """`message` with each over-long word cut to its start and end around `…`, and at most
    `MAX_MESSAGE_LENGTH` characters in all."""
    text = _LONG_WORD.sub(lambda word: word.group()[:MAX_QUOTED_LENGTH - 4] + "…" + word.group()[-3:], message)
    return text if len(text) <= MAX_MESSAGE_LENGTH else text[:MAX_MESSAGE_LENGTH - 1] + "…"


class DomainError(Exception):
    """Base of every error an administrator can act on."""

    code = "error"

    def __init__(self, message: str) -> None:
        message = bounded(str(message))
        super().__init__(message)
        self.message = message


class Invalid(DomainError):
    """The request is malformed or breaks a rule (400)."""

    code = "invalid"


class Unauthenticated(DomainError):
    """No signed-in principal (401)."""

    code = "unauthenticated"


class Forbidden(DomainError):
    """Signed in, but without the role or the right (403)."""

    code = "forbidden"


class NotFound(DomainError):
    """The thing named does not exist (404)."""

    code = "not_found"


class Conflict(DomainError):
    """The request conflicts with the current state, or lost a race (409)."""

    code = "conflict"


class ConcurrencyConflict(Conflict):
    """An ETag-guarded write lost a race: someone changed the entity first."""

    code = "conflict"


class Gone(DomainError):
    """What the request names is no longer kept (410): start again from the beginning."""

    code = "gone"


class TooLarge(DomainError):
    """The request or file is over a documented limit (413)."""

    code = "too_large"


class UnsupportedMediaType(DomainError):
    """The request body's content type is not one this endpoint takes (415)."""

    code = "unsupported_media_type"


class UpstreamError(DomainError):
    """Microsoft Graph or Entra ID answered with an error we cannot fix here (502)."""

    code = "upstream_error"


class Unavailable(DomainError):
    """A service behind us asks us to wait (503): try again after `retry_after` seconds."""

    code = "unavailable"

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SettingsError(Exception):
    """A setting is missing or malformed; raised at start, names the setting."""
