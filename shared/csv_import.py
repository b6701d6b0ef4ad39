"""Bulk add by CSV: the template, the upload, the blob-triggered import, its record and report, the export.

Owns the Imports table (PartitionKey = account id, RowKey = import id), the blobs under
the uploads container (`{account id}/{import id}.csv`) and the reports container
(`{account id}/{import id}.report.csv`). It writes calendars only through the Calendars
table's rules (`Calendar`, `CalendarRepository`, space claimed before the calendar is
written, released again if that write fails) and never calls Graph.

Streaming: a blob is read in 1 MiB ranges pinned to the ETag that fired, decoded
incrementally (`shared.csv_dialect`), and read twice: a first pass checks the whole file
(what it is, size, rows, cell lengths) so a bad file is refused with nothing applied; the
second applies it. Pass one also collects the room references, so every space the file names
is read once before pass two (`SpaceDirectory.resolve_many`), not per row. The report is
spooled to a temporary file and uploaded from there. What stays in memory grows with the
number of rows, not their bytes: one email per row (in-file duplicates), one entry per space
named, and a small projection of the account's existing calendars — all bounded by `MAX_ROWS`.

Writes go 100 rows at a time, a few such chunks in flight: first the chunk's space claims as
one entity-group transaction of If-Match merges (`SpaceDirectory.claim_many`; a claim that
loses a race is decided again one by one, a taken space rejects its row), then the chunk's
new calendars as one transaction. A row's calendar is written only once its space is its own.
While one window's transactions are answered the next window is parsed and decided; windows are
reported in line order. Every row is decided from the rows before it, never from when a claim
was answered: the first acceptable row naming a space holds it in the file (a later row naming
it is rejected, whatever that claim comes to), and moving a calendar off a space an earlier row
named waits for that row's claim. So a file gives the same report however its windows fall and
its requests interleave.

Restartable (the blob trigger is at-least-once): the import id comes from the blob's
path and every calendar this import writes carries `import_marker` = import id + blob
ETag and `import_action` (added/updated). A run that finds a row's calendar already
marked by itself reports the recorded action and writes nothing, so a retry after a
crash at any point ends with every row applied once or reported, and the report of the
retry is the report a clean run would have written. New calendars are created in
entity-group transactions (create, not upsert: a calendar added meanwhile by someone else
is never overwritten). A finished import (`completed`/`failed` for the same ETag) is not
run again: processing the same blob twice changes nothing and leaves the same report.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import tempfile
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobClient, BlobServiceClient, ContentSettings

from shared.accounts import AccountRepository
from shared.audit import AuditLog
from shared.calendars import Calendar, CalendarRepository, claim_space, normalise_email
from shared.csv_dialect import FieldTooLong, NotACsv, check_not_binary, protect, read_rows
from shared.errors import ConcurrencyConflict, Conflict, Invalid, NotFound, TooLarge
from shared.models import AccountStatus, iso, utc_now
from shared.spaces import Space, SpaceDirectory, SpaceTaken, space_not_found
from shared.storage import Table
from shared.storage.tables import MAX_BATCH_SIZE

log = logging.getLogger("rcc.csv_import")

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_ROWS = 100_000
READ_CHUNK_BYTES = 1024 * 1024
REJECTED_IN_RECORD = 200
# Table Storage holds at most 32K characters in one string property; the rejected list is
# split over a few of them. https://learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model#property-types
_PROPERTY_CHARACTERS = 30_000
# Rows decided but not yet written out to the report: flushed with each round of transactions.
_WINDOW_ROWS = 2000
# Entity-group transactions in flight at once.
PARALLEL_TRANSACTIONS = 4
# Windows whose transactions are submitted but not yet reported: while one is written, the next is
# parsed and decided, so Table Storage is kept busy.
_WINDOWS_IN_FLIGHT = 2
TEMPLATE_PATH = Path(__file__).with_name("csvTemplate.csv")
REPORT_COLUMNS = ("line", "email", "roomID", "outcome", "reason")
EXPORT_COLUMNS = ("email", "roomID", "status", "space_name", "display_name", "status_reason")
_KEY_UNSAFE = re.compile(r"[/\\#?\x00-\x1f\x7f]")


class ImportStatus:
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass
class RowResult:
    line: int
    email: str
    room: str
    outcome: str  # added | updated | unchanged | rejected (+ "would be" in validate-only)
    reason: str = ""
    pending: Calendar | None = None
    to_claim: Space | None = None  # the space a new calendar links to, claimed just before it is written
    claimed: Space | None = None


@dataclass
class Known:
    """What an import needs to know about an existing calendar before deciding a row."""

    space_id: str
    action: str | None  # the action this very import recorded on it, if it wrote it
    previous_space_id: str | None


@dataclass
class ImportRun:
    account_id: str
    import_id: str
    actor: str
    validate_only: bool
    marker: str
    known: dict[str, Known]
    spaces: dict[str, Space]
    report: Any
    writer: Any
    pool: ThreadPoolExecutor
    counts: dict[str, int] = field(default_factory=lambda: {"rows": 0, "added": 0, "updated": 0,
                                                            "unchanged": 0, "rejected": 0})
    rejected: list[dict[str, Any]] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)
    space_holders: dict[str, tuple[str, int]] = field(default_factory=dict)
    window: list[RowResult] = field(default_factory=list)
    pending: int = 0
    in_flight: deque[tuple[list[RowResult], list[Future[None]]]] = field(default_factory=deque)


def parse_upload_path(blob_name: str) -> tuple[str, str] | None:
    """(account id, import id) of `{account id}/{file}`; None when the blob is in no account's folder."""
    parts = blob_name.strip("/").split("/")
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    account_id, file_name = parts
    import_id = file_name[:-4] if file_name.lower().endswith(".csv") and len(file_name) > 4 else file_name
    return account_id, _KEY_UNSAFE.sub("_", import_id)[:200]


def report_name_for(blob_name: str) -> str:
    stem = blob_name.strip("/")
    stem = stem[:-4] if stem.lower().endswith(".csv") else stem
    return f"{stem}.report.csv"


def new_import_id() -> str:
    """Sortable by upload time, unique, and safe as a RowKey and a blob name."""
    return f"{utc_now():%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


class CalendarImports:
    def __init__(
        self,
        *,
        blobs: BlobServiceClient,
        uploads_container: str,
        reports_container: str,
        imports: Table,
        calendars: CalendarRepository,
        accounts: AccountRepository,
        spaces: SpaceDirectory,
        audit: AuditLog,
        queue_for_connection: Callable[[str, str], Any],
    ) -> None:
        self.uploads = blobs.get_container_client(uploads_container)
        self.reports = blobs.get_container_client(reports_container)
        self.uploads_container = uploads_container
        self.imports = imports
        self.calendars = calendars
        self.accounts = accounts
        self.spaces = spaces
        self.audit = audit
        self.queue_for_connection = queue_for_connection

    # --- the template and the export ---------------------------------------------------------

    @staticmethod
    def template() -> bytes:
        return TEMPLATE_PATH.read_bytes()

    def export(self, account_id: str) -> tuple[str, bytes]:
        """The account's calendars in the template's format plus read-only columns the import ignores."""
        account = self.accounts.get(account_id)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(EXPORT_COLUMNS)
        for calendar in self.calendars.all_of(account_id):
            writer.writerow([protect(value or "") for value in (
                calendar.email, calendar.space_number or calendar.space_id, calendar.status.value,
                calendar.space_name, calendar.display_name, calendar.status_reason)])
        name = re.sub(r"[^A-Za-z0-9.-]+", "-", account.tenant_name or account.tenant_id).strip("-") or "account"
        # A BOM so Excel opens the UTF-8 file as UTF-8.
        return f"calendars-{name}.csv", b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8")

    # --- the upload (the admin page's door) --------------------------------------------------

    def _usable_account(self, account_id: str) -> None:
        account = self.accounts.get(account_id)
        if account.status is not AccountStatus.VERIFIED:
            raise Conflict(f"the account {account.tenant_name} is {account.status.label.lower()}: "
                           "authorize it before importing calendars")

    def upload(self, account_id: str, content: bytes, *, validate_only: bool, connect: bool,
               actor: str) -> dict[str, Any]:
        """Store the file in the drop folder with who sent it; the blob trigger imports it."""
        self._usable_account(account_id)
        if not content:
            raise Invalid("the file is empty: fill in the template (email,roomID) and upload it")
        if len(content) > MAX_FILE_BYTES:
            raise TooLarge(_too_large_message(len(content)))
        check_not_binary(content[:8])
        import_id = new_import_id()
        blob_name = f"{account_id}/{import_id}.csv"
        now = iso(utc_now())
        self.imports.insert({
            "PartitionKey": account_id, "RowKey": import_id, "status": ImportStatus.PENDING,
            "validate_only": validate_only, "connect": connect, "uploaded_by": actor, "uploaded_at": now,
            "blob_name": blob_name,
        })
        self.uploads.upload_blob(
            blob_name, content, overwrite=False,
            content_settings=ContentSettings(content_type="text/csv"),
            # Metadata values are ASCII only: the uploader's name is percent-encoded.
            metadata={"uploaded_by": quote(actor, safe="@. "), "uploaded_at": now,
                      "validate_only": str(validate_only).lower(), "connect": str(connect).lower()},
        )
        self.audit.record(actor, "calendars.import.upload", blob_name, outcome="ok", account=account_id,
                          bytes=len(content), validate_only=validate_only)
        return {"import_id": import_id, "status": ImportStatus.PENDING}

    # --- reading records ---------------------------------------------------------------------

    def list(self, account_id: str) -> dict[str, Any]:
        self.accounts.get(account_id)
        items = [_record_to_api(entity, with_rejected=False)
                 for entity in self.imports.query_all("PartitionKey eq @a", parameters={"a": account_id})]
        items.sort(key=lambda item: item["uploaded_at"] or "", reverse=True)
        return {"items": items}

    def get(self, account_id: str, import_id: str) -> dict[str, Any]:
        self.accounts.get(account_id)
        entity = self.imports.get(account_id, import_id) if not _KEY_UNSAFE.search(import_id) else None
        if entity is None:
            raise NotFound(f"there is no import {import_id!r} for this account")
        return _record_to_api(entity, with_rejected=True)

    def report(self, account_id: str, import_id: str) -> tuple[str, Iterator[bytes]]:
        record = self.get(account_id, import_id)
        entity = self.imports.get(account_id, import_id) or {}
        name = entity.get("report_blob")
        if record["status"] not in (ImportStatus.COMPLETED, ImportStatus.FAILED) or not name:
            raise NotFound(f"the import {import_id} is {record['status']}: its report is not written yet")
        try:
            downloader = self.reports.get_blob_client(name).download_blob()
        except ResourceNotFoundError:
            raise NotFound(f"the report of import {import_id} is gone") from None
        return f"import-{import_id}-report.csv", downloader.chunks()

    # --- the blob trigger's work -------------------------------------------------------------

    def process_blob(self, blob_name: str) -> dict[str, Any]:
        """Import one uploaded blob (its name inside the uploads container). Returns the record.

        File problems (not a CSV, over a limit, unknown account) are outcomes, recorded and
        reported; only storage failures raise, so the trigger's retry runs it again."""
        blob = self.uploads.get_blob_client(blob_name)
        properties = blob.get_blob_properties()
        metadata = properties.metadata or {}
        report_name = report_name_for(blob_name)
        parsed = parse_upload_path(blob_name)
        if parsed is None:
            message = (f"{self.uploads_container}/{blob_name} is in no account's folder: put the file at "
                       f"{self.uploads_container}/{{account id}}/{{name}}.csv. Nothing was imported.")
            self._write_error_report(report_name, message)
            log.warning("import of %s refused: no account in the path", blob_name)
            return {"status": ImportStatus.FAILED, "error": message}
        account_id, import_id = parsed
        if self.accounts.find(account_id) is None:
            message = f"there is no calendar account {account_id!r}. Nothing was imported."
            self._write_error_report(report_name, message)
            log.warning("import of %s refused: unknown account", blob_name)
            return {"status": ImportStatus.FAILED, "error": message}

        record = self._begin(account_id, import_id, blob_name, properties, metadata)
        if record["status"] in (ImportStatus.COMPLETED, ImportStatus.FAILED):
            return _record_to_api(record, with_rejected=True)
        validate_only = bool(record.get("validate_only"))
        actor = record.get("uploaded_by") or "blob upload"
        try:
            self._usable_account(account_id)
            _, references = self._scan(blob, properties.etag, properties.size)
        except (NotACsv, FieldTooLong, TooLarge, Invalid, Conflict) as problem:
            message = problem.message.rstrip(". ") + ". Nothing was imported."
            self._write_error_report(report_name, message)
            return self._finish(record, report_name, error=message)

        # Every space the file names, read once (with the ETags the claims are made with).
        spaces = self.spaces.resolve_many(references)
        references.clear()
        with tempfile.SpooledTemporaryFile(max_size=1024 * 1024, mode="w+b") as spool, \
                ThreadPoolExecutor(max_workers=PARALLEL_TRANSACTIONS, thread_name_prefix="import") as pool:
            text = io.TextIOWrapper(spool, encoding="utf-8", newline="", write_through=True)
            text.write("\ufeff")
            writer = csv.writer(text, lineterminator="\r\n")
            writer.writerow(REPORT_COLUMNS)
            run = ImportRun(account_id=account_id, import_id=import_id, actor=actor, validate_only=validate_only,
                            marker=f"{import_id}@{properties.etag}", known=self._known(account_id, import_id,
                                                                                      properties.etag),
                            spaces=spaces, report=text, writer=writer, pool=pool)
            for row in read_rows(self._chunks(blob, properties.etag)):
                self._decide(run, row)
                if len(run.window) >= _WINDOW_ROWS or run.pending >= MAX_BATCH_SIZE * PARALLEL_TRANSACTIONS:
                    self._flush(run)
            self._flush(run)
            self._drain(run)
            text.flush()
            length = spool.tell()
            spool.seek(0)
            self.reports.upload_blob(report_name, spool, length=length, overwrite=True,
                                     content_settings=ContentSettings(content_type="text/csv; charset=utf-8"))
            text.detach()
        if record.get("connect") and not validate_only:
            self.queue_for_connection(account_id, actor)
        if not validate_only:
            self.audit.record(actor, "calendars.import", blob_name, outcome="ok", account=account_id,
                              **run.counts)
        return self._finish(record, report_name, counts=run.counts, rejected=run.rejected)

    def _begin(self, account_id: str, import_id: str, blob_name: str, properties: Any,
               metadata: dict[str, str]) -> dict[str, Any]:
        """Claim the Imports row for this blob version (ETag-guarded); an already finished one is returned."""
        entity = self.imports.get(account_id, import_id)
        if entity is not None and entity.get("blob_etag") == properties.etag and entity.get("status") in (
                ImportStatus.COMPLETED, ImportStatus.FAILED):
            return entity
        fresh = {
            "PartitionKey": account_id, "RowKey": import_id, "blob_name": blob_name,
            "validate_only": _flag(metadata.get("validate_only")),
            "connect": _flag(metadata.get("connect")),
            "uploaded_by": unquote(metadata.get("uploaded_by") or "") or "blob upload",
            "uploaded_at": metadata.get("uploaded_at") or iso(properties.last_modified or utc_now()),
        }
        base = dict(entity) if entity is not None else fresh
        if entity is not None and entity.get("blob_etag") not in (None, "", properties.etag):
            base = {**fresh}  # the blob was replaced: a new version is a new run of the same import
        base.update(status=ImportStatus.RUNNING, blob_etag=properties.etag, started_at=iso(utc_now()),
                    attempts=int((entity or {}).get("attempts") or 0) + 1, error="", finished_at="")
        if entity is None:
            saved = self.imports.insert(base, exists_message="the import is being started by another run")
        else:
            saved = self.imports.update({**base, "_etag": entity["_etag"]})
        return saved

    def _finish(self, record: dict[str, Any], report_name: str, *, error: str | None = None,
                counts: dict[str, int] | None = None, rejected: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        entity = {key: value for key, value in record.items() if not key.startswith("rejected_json")}
        entity.update(status=ImportStatus.FAILED if error else ImportStatus.COMPLETED, error=error or "",
                      finished_at=iso(utc_now()), report_blob=report_name,
                      **{name: (counts or {}).get(name, 0) for name in ("rows", "added", "updated", "unchanged")},
                      rejected_count=(counts or {}).get("rejected", 0))
        encoded = json.dumps(rejected or [], ensure_ascii=False)
        for index in range(0, max(len(encoded), 1), _PROPERTY_CHARACTERS):
            entity[f"rejected_json_{index // _PROPERTY_CHARACTERS}"] = encoded[index:index + _PROPERTY_CHARACTERS]
        saved = self.imports.update(entity)
        return _record_to_api(saved, with_rejected=True)

    # --- reading the blob --------------------------------------------------------------------

    def _chunks(self, blob: BlobClient, etag: str) -> Iterator[bytes]:
        """The blob in 1 MiB ranges of the version that fired: a replaced blob fails this run
        (HTTP 412) and its new version fires on its own."""
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
                raise TooLarge(_too_large_message(offset))
            if len(chunk) < READ_CHUNK_BYTES:
                return

    def _scan(self, blob: BlobClient, etag: str, size: int) -> tuple[int, set[str]]:
        """Pass one: the whole file is a CSV within the limits, or one clear error before anything is
        applied. Returns the row count and the room references the rows make (resolved at once
        before pass two)."""
        if size > MAX_FILE_BYTES:
            raise TooLarge(_too_large_message(size))
        if size == 0:
            raise NotACsv("the file is empty: it needs the header line email,roomID and a row per calendar")
        rows = 0
        references: set[str] = set()
        for row in read_rows(self._chunks(blob, etag)):
            rows += 1
            if rows > MAX_ROWS:
                raise TooLarge(f"the file has more than {MAX_ROWS:,} rows; split it into smaller files.")
            if row.room and not row.problem:
                references.add(row.room)
        if rows == 0:
            raise NotACsv("the file has a header but no rows: add a row per calendar")
        return rows, references

    def _known(self, account_id: str, import_id: str, etag: str) -> dict[str, Known]:
        marker = f"{import_id}@{etag}"
        known: dict[str, Known] = {}
        for entity in self.calendars.table.query_all(
                "PartitionKey eq @a", parameters={"a": account_id},
                select=["RowKey", "space_id", "import_marker", "import_action", "import_previous_space_id"]):
            mine = entity.get("import_marker") == marker
            known[entity["RowKey"]] = Known(
                space_id=entity.get("space_id") or "",
                action=(entity.get("import_action") or None) if mine else None,
                previous_space_id=(entity.get("import_previous_space_id") or None) if mine else None,
            )
        return known

    # --- deciding and applying one row -------------------------------------------------------

    def _decide(self, run: ImportRun, row: Any) -> None:
        run.counts["rows"] += 1
        result = RowResult(line=row.line, email=row.email, room=row.room or "", outcome="rejected")
        self._decide_row(run, row, result)
        # Into the window once decided: deciding may submit and report the rows before it.
        run.window.append(result)

    def _decide_row(self, run: ImportRun, row: Any, result: RowResult) -> None:
        if row.problem:
            result.reason = row.problem
            return
        try:
            email = normalise_email(row.email)
        except Invalid as error:
            result.reason = error.message
            return
        result.email = email
        first = run.seen.get(email)
        if first is not None:
            result.reason = f"{email} is already on line {first} of this file"
            return
        run.seen[email] = row.line
        known = run.known.get(email)
        if known is not None and known.action:
            # Written by this very import in an earlier attempt: report it, write nothing again.
            result.outcome = known.action
            if row.room:
                run.space_holders.setdefault(known.space_id, (email, row.line))
            if known.previous_space_id and not run.validate_only:
                self._release_previous(run, known.previous_space_id, email)
            return
        space: Space | None = None
        if row.room:
            space = run.spaces.get(row.room)
            if space is None:
                result.reason = space_not_found(row.room).message
                return
            holder = run.space_holders.get(space.space_id)
            if holder is not None and holder[0] != email:
                result.reason = (f"space {space.label} is already named on line {holder[1]} of this file "
                                 f"(for {holder[0]}): a space links to one calendar")
                return
            # The first row naming a space holds it in this file, whatever its claim comes to: so every
            # row is decided from the rows before it alone, never from when a claim was answered.
            run.space_holders[space.space_id] = (email, row.line)
        target = space.space_id if space else ""
        if known is not None and (row.room is None or known.space_id == target):
            # A file without a room column (a list of emails) never unlinks existing calendars;
            # a blank cell in the room column does, so export, edit and re-upload round-trips.
            result.outcome = "unchanged"
        elif run.validate_only:
            self._check_claimable(run, space, email, result)
        elif known is None:
            self._prepare_add(run, space, email, result)
        else:
            self._update_link(run, space, email, result)

    def _check_claimable(self, run: ImportRun, space: Space | None, email: str, result: RowResult) -> None:
        if space is not None and space.linked_account_id and not space.is_linked_to(run.account_id, email):
            holder = self.calendars.find(space.linked_account_id, space.linked_email or "")
            if holder is not None and holder.space_id == space.space_id:
                result.reason = SpaceTaken(space).message
                return
        result.outcome = "added" if email not in run.known else "updated"

    def _claim(self, run: ImportRun, space: Space, email: str) -> Space:
        return claim_space(self.spaces, self.calendars, space, run.account_id, email)

    def _prepare_add(self, run: ImportRun, space: Space | None, email: str, result: RowResult) -> None:
        """A new calendar, written in a transaction at the next flush; its space is claimed there first."""
        now = iso(utc_now())
        calendar = Calendar(account_id=run.account_id, email=email, added_at=now, added_by=run.actor,
                            updated_at=now, extra={"import_marker": run.marker, "import_action": "added",
                                                   "import_previous_space_id": ""})
        result.outcome, result.pending, result.to_claim = "added", calendar, space
        run.pending += 1

    def _update_link(self, run: ImportRun, space: Space | None, email: str, result: RowResult) -> None:
        calendar = self.calendars.find(run.account_id, email)
        if calendar is None:
            result.reason = f"{email} was removed while the file was being imported; upload it again"
            return
        target = space.space_id if space else None
        if calendar.space_id == target:
            result.outcome = "unchanged"
            return
        claimed = None
        if space is not None:
            try:
                claimed = self._claim(run, space, email)
            except (SpaceTaken, ConcurrencyConflict, NotFound) as error:
                result.reason = error.message
                return
        previous = calendar.space_id
        calendar.link_to(claimed)
        calendar.extra.update(import_marker=run.marker, import_action="updated",
                              import_previous_space_id=previous or "")
        try:
            self.calendars.save(calendar)
        except ConcurrencyConflict:
            if claimed is not None:
                self.spaces.release(claimed.space_id, run.account_id, email)
            result.reason = f"{email} was changed by someone else while the file was being imported; upload again"
            return
        if previous:
            self._release_previous(run, previous, email)
        result.outcome = "updated"

    def _release_previous(self, run: ImportRun, space_id: str, email: str) -> None:
        """Free the space a calendar is moved off. When an earlier row of the file named it, that
        row's claim is answered first and finds the space still linked, as it would if the rows
        were applied one by one."""
        holder = run.space_holders.get(space_id)
        if holder is not None and holder[0] != email:
            self._flush(run)
            self._drain(run)
        self.spaces.release(space_id, run.account_id, email)

    def _flush(self, run: ImportRun) -> None:
        """Submit the window: the spaces of its pending calendars are claimed and the calendars
        created, up to 100 rows at a time (one claims transaction, then one calendars transaction).
        The window is reported once they are answered, while later windows are being decided."""
        pending = [result for result in run.window if result.pending is not None]
        chunks = [pending[start:start + MAX_BATCH_SIZE] for start in range(0, len(pending), MAX_BATCH_SIZE)]

        def submit(chunk: list[RowResult]) -> None:
            self._claim_spaces(run, chunk)
            chunk = [result for result in chunk if result.pending is not None]
            if not chunk:
                return
            try:
                self.calendars.table.submit_in_batches(("create", r.pending.to_entity()) for r in chunk)
            except Conflict:
                # One of them was added by someone else meanwhile: the transaction applied nothing.
                for result in chunk:
                    self._add_one(run, result)

        # Chunks are independent (distinct rows, distinct spaces, each transaction atomic), so they go
        # at once; only the pool's threads touch a submitted row until its window is reported.
        run.in_flight.append((run.window, [run.pool.submit(submit, chunk) for chunk in chunks]))
        run.window, run.pending = [], 0
        while len(run.in_flight) > _WINDOWS_IN_FLIGHT:
            self._report_window(run)

    def _drain(self, run: ImportRun) -> None:
        while run.in_flight:
            self._report_window(run)

    def _report_window(self, run: ImportRun) -> None:
        """Wait for the oldest submitted window's transactions, then write its rows to the report in
        line order (a failed transaction raises here, and the trigger's retry resumes the import)."""
        window, futures = run.in_flight.popleft()
        for future in futures:
            future.result()
        for result in window:
            outcome = result.outcome
            if outcome == "rejected":
                run.counts["rejected"] += 1
                if len(run.rejected) < REJECTED_IN_RECORD:
                    run.rejected.append({"line": result.line, "email": result.email[:254],
                                         "reason": result.reason[:500]})
            else:
                run.counts[outcome] += 1
            shown = f"would be {outcome}" if run.validate_only and outcome != "rejected" else outcome
            run.writer.writerow([protect(str(value)) for value in (
                result.line, result.email, result.room, shown, result.reason)])

    def _claim_spaces(self, run: ImportRun, chunk: list[RowResult]) -> None:
        """Claim the chunk's spaces before their calendars are written (a crash in between leaves
        claims that point at this import's rows: the retry finds them already its own). A row whose
        space is taken is rejected and its calendar not written: a row never half-applies."""
        linking = [result for result in chunk if result.to_claim is not None]
        if not linking:
            return
        outcomes = self.spaces.claim_many([(result.to_claim, run.account_id, result.email)
                                           for result in linking])
        for result, outcome in zip(linking, outcomes, strict=True):
            assert result.pending is not None and result.to_claim is not None
            if isinstance(outcome, SpaceTaken):
                # Maybe a claim left by a crash, whose calendar never pointed back: claim_space repairs
                # those once they are old enough, and otherwise refuses like claim does.
                try:
                    outcome = self._claim(run, result.to_claim, result.email)
                except (SpaceTaken, ConcurrencyConflict, NotFound) as error:
                    outcome = error
            if isinstance(outcome, Space):
                result.pending.link_to(outcome)
                result.claimed = outcome
                continue
            result.outcome, result.reason, result.pending = "rejected", outcome.message, None

    def _add_one(self, run: ImportRun, result: RowResult) -> None:
        assert result.pending is not None
        try:
            self.calendars.add(result.pending)
        except Conflict:
            current = self.calendars.find(run.account_id, result.pending.email)
            if current is not None and current.extra.get("import_marker") == run.marker:
                return
            if result.claimed is not None:
                self.spaces.release(result.claimed.space_id, run.account_id, result.pending.email)
            result.outcome = "rejected"
            result.reason = f"{result.pending.email} was added by someone else while the file was being imported"

    def _write_error_report(self, report_name: str, message: str) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(REPORT_COLUMNS)
        writer.writerow(["", "", "", "error", protect(message)])
        self.reports.upload_blob(report_name, b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8"), overwrite=True,
                                 content_settings=ContentSettings(content_type="text/csv; charset=utf-8"))


def _too_large_message(size: int) -> str:
    return (f"the file is {size / 1024 / 1024:.1f} MiB; the limit is {MAX_FILE_BYTES // 1024 // 1024} MiB. "
            "Split it into smaller files")


def _record_to_api(entity: dict[str, Any], *, with_rejected: bool) -> dict[str, Any]:
    account_id, import_id = entity["PartitionKey"], entity["RowKey"]
    record: dict[str, Any] = {
        "import_id": import_id,
        "account_id": account_id,
        "status": entity.get("status") or ImportStatus.PENDING,
        "validate_only": bool(entity.get("validate_only")),
        "uploaded_by": entity.get("uploaded_by") or None,
        "uploaded_at": entity.get("uploaded_at") or None,
        "finished_at": entity.get("finished_at") or None,
        "counts": {"rows": int(entity.get("rows") or 0), "added": int(entity.get("added") or 0),
                   "updated": int(entity.get("updated") or 0), "unchanged": int(entity.get("unchanged") or 0),
                   "rejected": int(entity.get("rejected_count") or 0)},
        "error": entity.get("error") or None,
        "report_url": f"/api/accounts/{account_id}/imports/{quote(import_id)}/report.csv"
        if entity.get("report_blob") else None,
    }
    if with_rejected:
        pieces = []
        index = 0
        while f"rejected_json_{index}" in entity:
            pieces.append(entity[f"rejected_json_{index}"] or "")
            index += 1
        record["rejected"] = json.loads("".join(pieces)) if "".join(pieces) else []
    return record

