"""What the domain's identifiers look like: GUIDs, DNS names and room mailbox addresses.

Owns the one pattern of each and the one way an email address is normalised, so a tenant id,
an account id, a client id and an address are checked alike wherever they arrive. It never
looks anything up: whether a tenant or a mailbox exists is for Entra ID and Graph to say.
"""

from __future__ import annotations

import re
from typing import Any

from shared.errors import Invalid

# 8-4-4-4-12 hex digits, either case (callers lower-case what they keep).
# `\Z`, not `$`: `$` also matches before a trailing newline, which must never pass as part of a key.
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z", re.IGNORECASE)
# A DNS name of ASCII labels, lower case (IDN look-alikes must be typed in their xn-- form).
DOMAIN_NAME = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]\Z")
# The local part of a mailbox address as Exchange Online allows it (no quoted forms).
_LOCAL_PART = re.compile(r"^[a-z0-9!$%&'*+=^_`{|}~-]+(?:\.[a-z0-9!$%&'*+=^_`{|}~-]+)*\Z")
MAX_EMAIL_LENGTH = 254


def is_guid(value: Any) -> bool:
    return isinstance(value, str) and GUID.match(value) is not None


def normalise_email(value: Any) -> str:
    """A room mailbox address, trimmed and lower-cased; `Invalid` saying what is wrong."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid("enter the room's email address")
    text = value.strip().lower()
    if len(text) > MAX_EMAIL_LENGTH:
        raise Invalid(f"the email address is {len(text)} characters long; the limit is {MAX_EMAIL_LENGTH}")
    if not text.isascii():
        raise Invalid(f"{text!r} contains non-ASCII characters; room mailbox addresses are plain ASCII")
    if text.count("@") != 1:
        raise Invalid(f"{text!r} is not an email address (it needs exactly one @)")
    local, domain = text.split("@")
    if local.startswith('"'):
        raise Invalid(f"{text!r} has a quoted local part; room mailboxes never do — check the address")
    if not local or len(local) > 64 or not _LOCAL_PART.match(local):
        raise Invalid(f"{text!r} is not a valid email address (check the part before the @)")
    if not DOMAIN_NAME.match(domain):
        raise Invalid(f"{text!r} is not a valid email address (check the domain after the @)")
    return text
