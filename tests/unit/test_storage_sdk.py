"""The SDK fast paths' pure parts: the pin, the transaction body written and the answer read
(their behaviour against Azurite, beside the SDK's own, is in tests/integration/test_storage_sdk.py)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from azure.core.exceptions import HttpResponseError

from shared.storage._sdk import CHECKED_SDK_VERSION, body_of, parse


def _request(method: str, url: str, content: str | None, **headers: str) -> SimpleNamespace:
    return SimpleNamespace(method=method, url=url, content=content, headers=headers)


def test_the_body_holds_each_request_in_one_changeset_in_order() -> None:
    body = body_of([_request("POST", "http://h/acct/T", '{"a": "é"}', **{"Content-Type": "application/json",
                                                                          "Content-Length": "99"}),
                    _request("DELETE", "http://h/acct/T(PartitionKey='p',RowKey='r')", None, **{"If-Match": "*"})],
                   "batch_1", "changeset_2")
    text = body.decode("utf-8")
    assert text.startswith("--batch_1\r\nContent-Type: multipart/mixed; boundary=changeset_2\r\n\r\n--changeset_2\r\n")
    assert text.endswith("--changeset_2--\r\n\r\n--batch_1--\r\n")
    first, second = text.split("--changeset_2\r\n")[1:3]
    assert "Content-ID: 0\r\n\r\nPOST http://h/acct/T HTTP/1.1\r\n" in first
    # The length is the encoded body's, whatever the request said.
    assert "Content-Length: 11\r\n" in first and "99" not in first
    assert first.endswith('\r\n\r\n{"a": "é"}\r\n')
    assert ("Content-ID: 1\r\n\r\nDELETE http://h/acct/T(PartitionKey='p',RowKey='r') HTTP/1.1\r\n"
            "If-Match: *\r\n") in second
    assert "Content-Length" not in second


def _answer(*parts: str) -> tuple[str, bytes]:
    inner = "".join(f"--changesetresponse_9\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary"
                    f"\r\n\r\n{part}\r\n" for part in parts)
    body = (f"--batchresponse_8\r\nContent-Type: multipart/mixed; boundary=changesetresponse_9\r\n\r\n{inner}"
            "--changesetresponse_9--\r\n--batchresponse_8--\r\n")
    return "multipart/mixed; boundary=batchresponse_8", body.encode()


def test_each_answer_is_read_with_its_status_and_etag() -> None:
    parts = parse(*_answer('HTTP/1.1 204 No Content\r\nETag: W/"datetime\'1\'"\r\n',
                           'HTTP/1.1 201 Created\r\nLocation: x\r\nEtag: W/"datetime\'2\'"\r\n'))
    assert [(p.status, p.headers["etag"]) for p in parts] == [(204, 'W/"datetime\'1\'"'), (201, 'W/"datetime\'2\'"')]


def test_a_failed_transaction_is_one_part_with_the_error() -> None:
    error = ('{"odata.error":{"code":"EntityAlreadyExists",'
             '"message":{"value":"1:The specified entity already exists."}}}')
    [part] = parse(*_answer(f"HTTP/1.1 409 Conflict\r\nContent-ID: 2\r\nContent-Type: application/json\r\n\r\n{error}"))
    assert part.status == 409 and part.body == error.encode()


def test_an_unreadable_answer_is_an_error_not_a_guess() -> None:
    with pytest.raises(HttpResponseError):
        parse(*_answer("garbage\r\n"))


def test_the_fast_paths_are_pinned_to_the_sdk_version_in_requirements() -> None:
    # Bumping azure-data-tables turns the fast paths off until they are checked again:
    # re-run tests/integration/test_storage_sdk.py and move CHECKED_SDK_VERSION with the pin.
    requirements = (Path(__file__).resolve().parents[2] / "requirements.txt").read_text(encoding="utf-8")
    pinned = re.search(r"^azure-data-tables==(\S+)$", requirements, re.MULTILINE)
    assert pinned is not None and pinned.group(1) == CHECKED_SDK_VERSION
