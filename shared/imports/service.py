"""Bulk add by CSV: the template, the upload, the blob-triggered import, its record and report, the export.

Owns the blobs under the uploads container (`{account id}/{import id}.csv`) and the reports
container (`{account id}/{import id}.report.csv`), and the order of one import: the record is
claimed for the blob version, the whole file is checked (pass one: what it is, size, rows, cell
lengths), every space it names is read once, then the rows are applied (pass two, `run`) and
the report written. What stays in memory grows with the number of rows, not their bytes. The
blob trigger is at-least-once: a finished record for the same ETag is not run again, so
processing the same blob twice changes nothing. It writes calendars only through the
calendars package's rules and never calls Graph.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContentSettings

from shared.accounts import AccountRepository
from shared.audit import AuditLog
from shared.calendars import CalendarHooks, CalendarRepository, SpaceLinks
from shared.errors import Conflict, Invalid, NotFound, TooLarge
from shared.imports.dialect import CsvWriter, FieldTooLong, NotACsv, check_not_binary, read_rows
from shared.imports.files import (
    MAX_FILE_BYTES,
    check_whole_file,
    chunks,
    spooled_report,
    too_large_message,
    write_error_report,
)
from shared.imports.records import (
    ImportRecords,
    ImportStatus,
    new_import_id,
    parse_upload_path,
    record_to_api,
    report_name_for,
)
from shared.imports.run import PARALLEL_TRANSACTIONS, ImportRun, Known
from shared.models import AccountStatus, iso, utc_now

log = logging.getLogger("rcc.imports")

TEMPLATE_PATH = Path(__file__).with_name("csvTemplate.csv")
EXPORT_COLUMNS = ("email", "roomID", "status", "space_name", "display_name", "status_reason")


class CalendarImports:
    def __init__(
        self,
        *,
        blobs: BlobServiceClient,
        uploads_container: str,
        reports_container: str,
        records: ImportRecords,
        calendars: CalendarRepository,
        accounts: AccountRepository,
        links: SpaceLinks,
        audit: AuditLog,
        queue_for_connection: Callable[[str, str], Any],
        hooks: CalendarHooks | None = None,
    ) -> None:
        self.uploads = blobs.get_container_client(uploads_container)
        self.reports = blobs.get_container_client(reports_container)
        self.uploads_container = uploads_container
        self.records = records
        self.calendars = calendars
        self.accounts = accounts
        self.links = links
        self.audit = audit
        self.queue_for_connection = queue_for_connection
        self.hooks = hooks or CalendarHooks()

    # --- the template and the export ---------------------------------------------------------

    @staticmethod
    def template() -> bytes:
        return TEMPLATE_PATH.read_bytes()

    def export(self, account_id: str) -> tuple[str, bytes]:
        """The account's calendars in the template's format plus read-only columns the import ignores."""
        account = self.accounts.get(account_id)
        buffer = io.StringIO()
        writer = CsvWriter(buffer)
        writer.writerow(EXPORT_COLUMNS)
        for calendar in self.calendars.all_of(account_id):
            writer.writerow((calendar.email, calendar.space_number or calendar.space_id, calendar.status.value,
                             calendar.space_name, calendar.display_name, calendar.status_reason))
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
            raise TooLarge(too_large_message(len(content)))
        check_not_binary(content[:8])
        import_id = new_import_id()
        blob_name = f"{account_id}/{import_id}.csv"
        now = iso(utc_now())
        self.records.add_pending(account_id, import_id, blob_name, validate_only=validate_only, connect=connect,
                                 actor=actor, uploaded_at=now)
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
        return {"items": self.records.of_account(account_id)}

    def get(self, account_id: str, import_id: str) -> dict[str, Any]:
        self.accounts.get(account_id)
        return record_to_api(self.records.get(account_id, import_id), with_rejected=True)

    def report(self, account_id: str, import_id: str) -> tuple[str, Iterator[bytes]]:
        self.accounts.get(account_id)
        entity = self.records.get(account_id, import_id)
        status, name = entity.get("status") or ImportStatus.PENDING, entity.get("report_blob")
        if status not in (ImportStatus.COMPLETED, ImportStatus.FAILED) or not name:
            raise NotFound(f"the import {import_id} is {status}: its report is not written yet")
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
            return self._refuse(blob_name, report_name, message, "no account in the path")
        account_id, import_id = parsed
        if self.accounts.find(account_id) is None:
            message = f"there is no calendar account {account_id!r}. Nothing was imported."
            return self._refuse(blob_name, report_name, message, "unknown account")

        record = self.records.begin(account_id, import_id, blob_name, properties, metadata)
        if record["status"] in (ImportStatus.COMPLETED, ImportStatus.FAILED):
            return record_to_api(record, with_rejected=True)
        validate_only = bool(record.get("validate_only"))
        actor = record.get("uploaded_by") or "blob upload"
        try:
            self._usable_account(account_id)
            _, references = check_whole_file(blob, properties.etag, properties.size)
        except (NotACsv, FieldTooLong, TooLarge, Invalid, Conflict) as problem:
            message = problem.message.rstrip(". ") + ". Nothing was imported."
            write_error_report(self.reports, report_name, message)
            return self.records.finish(record, report_name, error=message)

        # Every space the file names, read once (with the ETags the claims are made with).
        spaces = self.links.spaces.resolve_many(references)
        references.clear()
        with spooled_report(self.reports, report_name) as writer, \
                ThreadPoolExecutor(max_workers=PARALLEL_TRANSACTIONS, thread_name_prefix="import") as pool:
            run = ImportRun(account_id=account_id, import_id=import_id, actor=actor, validate_only=validate_only,
                            marker=f"{import_id}@{properties.etag}",
                            known=self._known(account_id, f"{import_id}@{properties.etag}"), spaces=spaces,
                            writer=writer, pool=pool, calendars=self.calendars, links=self.links,
                            hooks=self.hooks)
            run.apply(read_rows(chunks(blob, properties.etag)))
        if record.get("connect") and not validate_only:
            self.queue_for_connection(account_id, actor)
        if not validate_only:
            self.audit.record(actor, "calendars.import", blob_name, outcome="ok", account=account_id,
                              **run.counts)
        return self.records.finish(record, report_name, counts=run.counts, rejected=run.rejected)

    def _refuse(self, blob_name: str, report_name: str, message: str, why: str) -> dict[str, Any]:
        write_error_report(self.reports, report_name, message)
        log.warning("import of %s refused: %s", blob_name, why)
        return {"status": ImportStatus.FAILED, "error": message}

    def _known(self, account_id: str, marker: str) -> dict[str, Known]:
        known: dict[str, Known] = {}
        for entity in self.calendars.links_and_marks(account_id):
            mine = entity.get("import_marker") == marker
            known[entity["RowKey"]] = Known(
                space_id=entity.get("space_id") or "",
                action=(entity.get("import_action") or None) if mine else None,
                previous_space_id=(entity.get("import_previous_space_id") or None) if mine else None,
            )
        return known
