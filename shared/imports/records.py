"""The Imports table (PartitionKey = account id, RowKey = import id): one record per uploaded file.

Owns the record's life — pending at upload, running for one blob version, completed or
failed with counts and the first rejected rows — and how it is shown. The import id comes
from the blob's path, so the record of a blob is found again by every retry; a finished
record for the same ETag tells a retry there is nothing left to do. It never reads the file.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import quote, unquote

from shared.errors import NotFound
from shared.models import iso, utc_now
from shared.storage import Table

REJECTED_IN_RECORD = 200
# Table Storage holds at most 32K characters in one string property; the rejected list is
# split over a few of them. https://learn.microsoft.com/rest/api/storageservices/understanding-the-table-service-data-model#property-types
_PROPERTY_CHARACTERS = 30_000
_KEY_UNSAFE = re.compile(r"[/\\#?\x00-\x1f\x7f]")


class ImportStatus:
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


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


class ImportRecords:
    def __init__(self, table: Table) -> None:
        self.table = table

    def add_pending(self, account_id: str, import_id: str, blob_name: str, *, validate_only: bool, connect: bool,
                    actor: str, uploaded_at: str | None) -> None:
        self.table.insert({
            "PartitionKey": account_id, "RowKey": import_id, "status": ImportStatus.PENDING,
            "validate_only": validate_only, "connect": connect, "uploaded_by": actor, "uploaded_at": uploaded_at,
            "blob_name": blob_name,
        })

    def of_account(self, account_id: str) -> list[dict[str, Any]]:
        items = [record_to_api(entity, with_rejected=False)
                 for entity in self.table.query_all("PartitionKey eq @a", parameters={"a": account_id})]
        items.sort(key=lambda item: item["uploaded_at"] or "", reverse=True)
        return items

    def get(self, account_id: str, import_id: str) -> dict[str, Any]:
        """The record's row; `NotFound` for an unknown (or impossible) id."""
        entity = self.table.get(account_id, import_id) if not _KEY_UNSAFE.search(import_id) else None
        if entity is None:
            raise NotFound(f"there is no import {import_id!r} for this account")
        return entity

    def begin(self, account_id: str, import_id: str, blob_name: str, properties: Any,
               metadata: dict[str, str]) -> dict[str, Any]:
        """Claim the Imports row for this blob version (ETag-guarded); an already finished one is returned."""
        entity = self.table.get(account_id, import_id)
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
            saved = self.table.insert(base, exists_message="the import is being started by another run")
        else:
            saved = self.table.update({**base, "_etag": entity["_etag"]})
        return saved

    def finish(self, record: dict[str, Any], report_name: str, *, error: str | None = None,
               counts: dict[str, int] | None = None, rejected: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        entity = {key: value for key, value in record.items() if not key.startswith("rejected_json")}
        entity.update(status=ImportStatus.FAILED if error else ImportStatus.COMPLETED, error=error or "",
                      finished_at=iso(utc_now()), report_blob=report_name,
                      **{name: (counts or {}).get(name, 0) for name in ("rows", "added", "updated", "unchanged")},
                      rejected_count=(counts or {}).get("rejected", 0))
        encoded = json.dumps(rejected or [], ensure_ascii=False)
        for index in range(0, max(len(encoded), 1), _PROPERTY_CHARACTERS):
            entity[f"rejected_json_{index // _PROPERTY_CHARACTERS}"] = encoded[index:index + _PROPERTY_CHARACTERS]
        saved = self.table.update(entity)
        return record_to_api(saved, with_rejected=True)


def record_to_api(entity: dict[str, Any], *, with_rejected: bool) -> dict[str, Any]:
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

