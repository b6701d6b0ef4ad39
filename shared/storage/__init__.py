"""Storage: the account's clients, ETag-guarded tables and transactions, leases, parallel requests,
writes of many threads committed together.

Owns everything that speaks to Azure Storage below the repositories of each capability. It
never reads or writes a domain row itself, and nothing outside this package reaches the SDK
fast paths (`_sdk.py`).
"""

from __future__ import annotations

from shared.storage.account import (
    CALENDAR_CHANGES_QUEUE,
    CONTAINER_NAMES,
    QUEUE_NAMES,
    REPORTS_CONTAINER,
    TABLE_NAMES,
    StorageAccount,
)
from shared.storage.grouped import GroupedWrites
from shared.storage.leases import Lease, LockRows, live_lease
from shared.storage.parallel import Parallel
from shared.storage.tables import (
    MAX_BATCH_SIZE,
    MAX_PAGE_SIZE,
    Page,
    Table,
    decode_continuation,
    encode_continuation,
    in_transactions,
)

__all__ = [
    "CALENDAR_CHANGES_QUEUE", "CONTAINER_NAMES", "MAX_BATCH_SIZE", "MAX_PAGE_SIZE", "QUEUE_NAMES", "REPORTS_CONTAINER",
    "TABLE_NAMES", "GroupedWrites", "Lease", "LockRows", "Page", "Parallel", "StorageAccount", "Table",
    "decode_continuation", "encode_continuation", "in_transactions", "live_lease",
]
