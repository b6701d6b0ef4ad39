"""An uploaded file and its report in Blob Storage: read in ranges, checked whole, reported row by row.

Owns reading a blob in 1 MiB ranges pinned to the ETag that fired (a blob replaced meanwhile
fails this run with 412, and its new version fires on its own), the first pass that checks the
whole file before anything is applied, and writing reports (spooled to a temporary file, never
the whole report in memory). It never decides a row.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobClient, ContainerClient, ContentSettings

from shared.errors import TooLarge
from shared.imports.dialect import CsvWriter, NotACsv, read_rows

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_ROWS = 100_000
READ_CHUNK_BYTES = 1024 * 1024
REPORT_COLUMNS = ("line", "email", "roomID", "outcome", "reason")
_CSV_CONTENT = ContentSettings(content_type="text/csv; charset=utf-8")


def too_large_message(size: int) -> str:
    return (f"the file is {size / 1024 / 1024:.1f} MiB; the limit is {MAX_FILE_BYTES // 1024 // 1024} MiB. "
            "Split it into smaller files")


def chunks(blob: BlobClient, etag: str) -> Iterator[bytes]:
    """The blob in 1 MiB ranges of the version that fired."""
    offset = 0
    while True:
        try:
            chunk = blob.download_blob(offset=offset, length=READ_CHUNK_BYTES, etag=etag,
                                       match_condition=MatchConditions.IfNotModified).readall()
        except ResourceNotFoundError:
            return
        except Exception as error:  # noqa: BLE001 - a range past the end is 416, the end of the blob
            if getattr(error, "status_code", None) == 416:
                return
            raise
        if not chunk:
            return
        yield chunk
        offset += len(chunk)
        if offset > MAX_FILE_BYTES:
            raise TooLarge(too_large_message(offset))
        if len(chunk) < READ_CHUNK_BYTES:
            return


def check_whole_file(blob: BlobClient, etag: str, size: int) -> tuple[int, set[str]]:
    """Pass one: the whole file is a CSV within the limits, or one clear error before anything is
    applied. Returns the row count and the room references the rows make (resolved at once
    before pass two)."""
    if size > MAX_FILE_BYTES:
        raise TooLarge(too_large_message(size))
    if size == 0:
        raise NotACsv("the file is empty: it needs the header line email,roomID and a row per calendar")
    rows = 0
    references: set[str] = set()
    for row in read_rows(chunks(blob, etag)):
        rows += 1
        if rows > MAX_ROWS:
            raise TooLarge(f"the file has more than {MAX_ROWS:,} rows; split it into smaller files.")
        if row.room and not row.problem:
            references.add(row.room)
    if rows == 0:
        raise NotACsv("the file has a header but no rows: add a row per calendar")
    return rows, references


def write_error_report(reports: ContainerClient, report_name: str, message: str) -> None:
    buffer = io.StringIO()
    writer = CsvWriter(buffer)
    writer.writerow(REPORT_COLUMNS)
    writer.writerow(["", "", "", "error", message])
    reports.upload_blob(report_name, b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8"), overwrite=True,
                        content_settings=_CSV_CONTENT)


@contextmanager
def spooled_report(reports: ContainerClient, report_name: str) -> Iterator[Any]:
    """A `CsvWriter` whose rows go to a temporary file, uploaded as the report when the block ends
    without an error (a failed run uploads nothing; its retry writes the report)."""
    with tempfile.SpooledTemporaryFile(max_size=1024 * 1024, mode="w+b") as spool:
        text = io.TextIOWrapper(spool, encoding="utf-8", newline="", write_through=True)
        text.write("\ufeff")
        writer = CsvWriter(text)
        writer.writerow(REPORT_COLUMNS)
        yield writer
        text.flush()
        length = spool.tell()
        spool.seek(0)
        reports.upload_blob(report_name, spool, length=length, overwrite=True, content_settings=_CSV_CONTENT)
        text.detach()
