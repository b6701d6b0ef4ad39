"""Bulk add by CSV: the one CSV reader, the upload and its record, the blob-triggered import, its report.

Owns the Imports table, the uploads and reports containers, and reading every CSV the
product takes (calendar files and spaces files).
"""

from __future__ import annotations

from shared.imports.dialect import FieldTooLong, NotACsv, protect, read_rows, unprotect
from shared.imports.files import MAX_FILE_BYTES, MAX_ROWS
from shared.imports.records import ImportRecords, ImportStatus, parse_upload_path, report_name_for
from shared.imports.run import PARALLEL_TRANSACTIONS
from shared.imports.service import CalendarImports
from shared.imports.spaces_file import space_rows_from_csv

__all__ = [
    "MAX_FILE_BYTES", "MAX_ROWS", "PARALLEL_TRANSACTIONS", "CalendarImports", "FieldTooLong", "ImportRecords",
    "ImportStatus", "NotACsv", "parse_upload_path", "protect", "read_rows", "report_name_for",
    "space_rows_from_csv", "unprotect",
]
