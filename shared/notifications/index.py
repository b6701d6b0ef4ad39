"""The Subscriptions index (PartitionKey = account id, RowKey = subscription id) → room email.

Graph's notifications name the tenant (the account's id) and the subscription; this is how the
webhooks find the calendar without a scan. One partition per account, so the subscriptions of
rooms connected together are recorded in one transaction. Rows may outlive their subscription
(a crash between steps); readers always check the calendar points back. A subscription id names
one room for as long as it exists, so what `find` has read is remembered (`KNOWN_PER_PROCESS`
of them): each notification after a room's first costs one read (its calendar), not two. A
remembered pair whose row was removed by another instance is exactly a row that outlived its
subscription, which the readers' check already drops. It never calls Graph.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from shared.models import iso, utc_now
from shared.storage import Table

# Subscriptions remembered by one process (one per connected room; about 200 bytes each).
KNOWN_PER_PROCESS = 50_000


class SubscriptionIndex:
    def __init__(self, table: Table, known: int = KNOWN_PER_PROCESS) -> None:
        self.table = table
        self._known: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._room_for = known
        self._lock = threading.Lock()

    @staticmethod
    def _entity(account_id: str, subscription_id: str, email: str) -> dict[str, Any]:
        return {"PartitionKey": account_id.lower(), "RowKey": subscription_id.lower(), "email": email,
                "created_at": iso(utc_now())}

    def put(self, account_id: str, subscription_id: str, email: str) -> None:
        entity = self._entity(account_id, subscription_id, email)
        self._forget([(entity["PartitionKey"], entity["RowKey"])])
        self.table.upsert(entity)

    def put_many(self, account_id: str, entries: Iterable[tuple[str, str]]) -> None:
        """(subscription id, email) pairs of one account, in entity-group transactions."""
        entities = [self._entity(account_id, subscription_id, email) for subscription_id, email in entries]
        self._forget([(entity["PartitionKey"], entity["RowKey"]) for entity in entities])
        self.table.submit_in_batches([("upsert", entity) for entity in entities])

    def find(self, account_id: Any, subscription_id: Any) -> str | None:
        """The room email, or None for anything unknown or not a plausible key."""
        if not (_plausible_key(account_id) and _plausible_key(subscription_id)):
            return None
        key = (account_id.lower(), subscription_id.lower())
        with self._lock:
            email = self._known.get(key)
            if email is not None:
                self._known.move_to_end(key)
                return email
        entity = self.table.get(*key)
        email = str(entity.get("email") or "") if entity is not None else ""
        if not email:
            return None  # unknown ones are never remembered: the row may be written next
        with self._lock:
            self._known[key] = email
            if len(self._known) > self._room_for:
                self._known.popitem(last=False)
        return email

    def remove(self, account_id: str, subscription_id: str) -> None:
        key = (account_id.lower(), subscription_id.lower())
        self._forget([key])
        self.table.delete(*key)

    def _forget(self, keys: Iterable[tuple[str, str]]) -> None:
        """Rows this process writes are read again next time (Graph never reuses an id; tests may)."""
        with self._lock:
            for key in keys:
                self._known.pop(key, None)


def _plausible_key(value: Any) -> bool:
    """A string Table Storage may take as a key (and short, as Graph's ids are)."""
    return isinstance(value, str) and 0 < len(value) <= 128 and not any(c in value for c in "/\\#?'\x00")
