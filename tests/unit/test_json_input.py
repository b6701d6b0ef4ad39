"""The one reader of outside JSON: every body that is not a usable JSON object is a domain error."""

from __future__ import annotations

import base64

import pytest

from shared.errors import Invalid, TooLarge
from shared.json_input import parse_json_object
from shared.notifications import parse_body
from shared.storage import decode_continuation

HOSTILE = [
    b"[" * 200_000,                      # RecursionError in the C scanner
    b'{"a": ' * 100_000,
    b'{"value": ' + b"[" * 200_000,
    b'{"n": ' + b"9" * 5000 + b"}",      # past Python's int digit limit
    b'{"n": NaN}', b'{"n": -Infinity}',  # not JSON
    b"\xff\xfe[\x00",                   # truncated UTF-16
    b"{", b"", b"null", b"[]", b'"x"',
]


@pytest.mark.parametrize("body", HOSTILE, ids=lambda b: repr(b[:16]))
def test_a_body_that_is_not_a_usable_json_object_is_invalid(body):
    with pytest.raises(Invalid):
        parse_json_object(body)


@pytest.mark.parametrize("body", HOSTILE, ids=lambda b: repr(b[:16]))
def test_a_notification_body_that_is_not_json_is_invalid_whatever_it_holds(body):
    with pytest.raises(Invalid):
        parse_body(body)


def test_a_body_over_its_limit_is_too_large():
    with pytest.raises(TooLarge):
        parse_json_object(b" " * 11 + b"{}", max_bytes=12)
    assert parse_json_object(b' {"a": [1, {"b": null}]} ') == {"a": [1, {"b": None}]}


def test_a_deeply_nested_continuation_token_is_invalid():
    token = base64.urlsafe_b64encode(b"[" * 1500).decode().rstrip("=")
    with pytest.raises(Invalid, match="continuation token"):
        decode_continuation(token)
