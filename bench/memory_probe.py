"""One CSV import in a process of its own, reporting the process's peak resident memory.

`python -m bench.memory_probe CONNECTION_STRING CONTAINER BLOB_NAME` runs
`CalendarImports.process_blob` (the blob trigger's work) on one blob and prints one JSON
line: `{"rows", "added", "peak_rss_bytes", "rss_before_bytes"}`. A fresh process, so the
peak belongs to this import alone (devhost's own peak would include everything it served
before). The blob lives in a container devhost does not watch, so the trigger does not
import it at the same time. It never writes anything but what the import itself writes.
"""

from __future__ import annotations

import json
import resource
import sys

from azure.core.exceptions import ServiceResponseError

from bench.bench_import import standalone_imports
from devhost.blobs import MAX_TRIES
from shared.imports import CalendarImports
from shared.storage import REPORTS_CONTAINER, StorageAccount


def _rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _process_like_the_host(imports: CalendarImports, blob_name: str) -> dict:
    """Up to `MAX_TRIES` tries, as the Functions host retries a blob trigger: the import is idempotent, and
    Azurite (Node) may reset a pooled keep-alive connection that sat idle past its 5 s timeout
    between the import's two passes, which the SDK does not retry for a POST."""
    for attempt in range(1, MAX_TRIES + 1):
        try:
            return imports.process_blob(blob_name)
        except ServiceResponseError:
            if attempt == MAX_TRIES:
                raise
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> int:
    connection, container, blob_name = (argv if argv is not None else sys.argv[1:])[:3]
    storage = StorageAccount.from_connection_string(connection)
    imports = standalone_imports(storage, container, REPORTS_CONTAINER)
    before = _rss_bytes()
    record = _process_like_the_host(imports, blob_name)
    # Linux reports ru_maxrss in KiB.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    counts = record.get("counts") or {}
    print(json.dumps({"rows": counts.get("rows"), "added": counts.get("added"), "status": record.get("status"),
                      "peak_rss_bytes": peak, "rss_before_bytes": before}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
