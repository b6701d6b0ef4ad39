"""A spaces file (`id,building_id,building_name,floor,number,name,type,capacity`) as rows to import.

Owns turning a CSV body into the rows `SpaceDirectory.import_spaces` takes: each a dict of
the file's columns (header names in any case) with its physical line under `_line`, and
`_extra_cells` when it has more cells than the header. A missing required column, a file
that is not a CSV, or a file over a limit is refused as a whole; bad values are left to the
import, which reports them per line. It never writes.
"""

from __future__ import annotations

from typing import Any

from shared.errors import Invalid, TooLarge
from shared.imports.dialect import records
from shared.spaces import CSV_COLUMNS, REQUIRED_COLUMNS
from shared.spaces.rows import MAX_CSV_BYTES, MAX_IMPORT_ROWS


def space_rows_from_csv(data: bytes | str) -> list[dict[str, Any]]:
    if len(data) > MAX_CSV_BYTES:
        raise TooLarge(f"the CSV is larger than {MAX_CSV_BYTES // (1024 * 1024)} MiB; split it into smaller files")
    body = data.encode("utf-8") if isinstance(data, str) else data
    rows = records([body], empty=f"the CSV is empty; expected a header with {','.join(CSV_COLUMNS)}")
    _, cells = next(rows)
    header = [cell.strip().lower() for cell in cells]
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise Invalid(f"the CSV header lacks {', '.join(missing)}; expected the columns {','.join(CSV_COLUMNS)}")
    found: list[dict[str, Any]] = []
    for line, cells in rows:
        row: dict[str, Any] = {name: value for name, value in zip(header, cells, strict=False) if name}
        if len(cells) > len(header):
            row["_extra_cells"] = True
        row["_line"] = line
        found.append(row)
        if len(found) > MAX_IMPORT_ROWS:
            raise TooLarge(f"an import holds at most {MAX_IMPORT_ROWS} spaces; split the file")
    return found
