"""The Subscriptions index (PartitionKey = account id, RowKey = subscription id) → room email.

Graph's notifications name the tenant (the account's id) and the subscription; this is how the
webhooks find the calendar without a scan. One partition per account, so the subscriptions of
rooms connected together are recorded in one transaction. Rows may outlive their subscription
(a crash between steps); readers always check the calendar points back. It never calls Graph.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.models import iso, utc_now
from shared.storage import Table


class SubscriptionIndex:
    def __init__(self, table: Table) -> None:
        self.table = table

    @staticmethod
    def _entity(account_id: str, subscription_id: str, email: str) -> dict[str, Any]:
        return {"PartitionKey": account_id.lower(), "RowKey": subscription_id.lower(), "email": email,
                "created_at": iso(utc_now())}

    def put(self, account_id: str, subscription_id: str, email: str) -> None:
        self.table.upsert(self._entity(account_id, subscription_id, email))

    def put_many(self, account_id: str, entries: Iterable[tuple[str, str]]) -> None:
        """(subscription id, email) pairs of one account, in entity-group transactions."""
        self.table.submit_in_batches([("upsert", self._entity(account_id, subscription_id, email))
                                      for subscription_id, email in entries])

    def find(self, account_id: Any, subscription_id: Any) -> str | None:
        """The room email, or None for anything unknown or not a plausible key."""
        if not (_plausible_key(account_id) and _plausible_key(subscription_id)):
            return None
        entity = self.table.get(account_id.lower(), subscription_id.lower())
        if entity is None:
            return None
        return str(entity.get("email") or "") or None

    def remove(self, account_id: str, subscription_id: str) -> None:
        self.table.delete(account_id.lower(), subscription_id.lower())


def _plausible_key(value: Any) -> bool:
    """A string Table Storage may take as a key (and short, as Graph's ids are)."""
    return isinstance(value, str) and 0 < len(value) <= 128 and not any(c in value for c in "/\\#?'\x00")
