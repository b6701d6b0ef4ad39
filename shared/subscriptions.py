"""Graph change-notification subscriptions of room calendars.

Owns creating, renewing, reauthorizing, listing and deleting subscriptions in
Graph, the secret `clientState` that proves a notification is ours, and the
Subscriptions index table (PartitionKey = subscription id) the webhooks use to
find a calendar. The clientState is derived, never stored: HMAC-SHA256 of the
account, room and a per-calendar nonce under STATE_SIGNING_KEY; only its
SHA-256 is kept on the calendar. It never writes the Calendars table; the
connector does.
https://learn.microsoft.com/graph/change-notifications-delivery-webhooks
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.calendars import Calendar
from shared.graph import GraphClient, GraphError
from shared.models import iso, parse_iso, utc_now
from shared.storage import Table

log = logging.getLogger("rcc.subscriptions")

# Outlook event subscriptions live at most 10,080 minutes; ask for a little less so
# clock skew between us and Graph never makes the request invalid.
# https://learn.microsoft.com/graph/api/resources/subscription#subscription-lifetime
MAX_EVENT_SUBSCRIPTION_MINUTES = 10080
EXPIRY_MARGIN_MINUTES = 30
# Renew subscriptions that expire within this window (DESIGN: "renewed well before expiry").
RENEW_WITHIN = timedelta(days=1)
CHANGE_TYPES = "created,updated,deleted"


def new_nonce() -> str:
    return secrets.token_urlsafe(24)


def client_state_for(signing_key: bytes, account_id: str, email: str, nonce: str) -> str:
    """The clientState of a calendar's subscription: 43 base64url characters (Graph allows 128)."""
    digest = hmac.new(signing_key, f"client-state|{account_id}|{email}|{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def client_state_hash(client_state: str) -> str:
    return hashlib.sha256(client_state.encode("utf-8", "surrogatepass")).hexdigest()


def client_state_matches(client_state: Any, stored_hash: str | None) -> bool:
    """Constant-time check of a notification's clientState against the stored hash."""
    if not isinstance(client_state, str) or not stored_hash or len(client_state) > 256:
        return False
    return hmac.compare_digest(client_state_hash(client_state), stored_hash)


def subscription_expiry(now: datetime | None = None) -> datetime:
    return (now or utc_now()) + timedelta(minutes=MAX_EVENT_SUBSCRIPTION_MINUTES - EXPIRY_MARGIN_MINUTES)


def graph_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def graph_moment(text: Any) -> str | None:
    """Graph's DateTimeOffset (seven fraction digits) as our ISO form."""
    if not isinstance(text, str) or not text:
        return None
    cleaned = text.strip()
    if "." in cleaned:
        head, _, tail = cleaned.partition(".")
        zone = tail.lstrip("0123456789")
        cleaned = head + (zone or "Z")
    try:
        return iso(parse_iso(cleaned))
    except ValueError:
        return None


@dataclass(frozen=True)
class GraphSubscription:
    subscription_id: str
    resource: str
    expires_at: str | None
    notification_url: str | None
    client_state: str | None

    @property
    def mailbox_key(self) -> str:
        """The `{id}` of `/users/{id}/events`, lower-cased (an object id or an address)."""
        parts = [p for p in self.resource.strip("/").split("/") if p]
        return parts[1].lower() if len(parts) >= 2 and parts[0].lower() == "users" else ""

    @classmethod
    def from_graph(cls, body: dict[str, Any]) -> GraphSubscription:
        return cls(
            subscription_id=str(body.get("id") or ""),
            resource=str(body.get("resource") or ""),
            expires_at=graph_moment(body.get("expirationDateTime")),
            notification_url=body.get("notificationUrl"),
            client_state=body.get("clientState"),
        )


class SubscriptionIndex:
    """(account, subscription id) -> room email, for the webhooks: Graph's notifications name
    the tenant (the account's id) and the subscription. One partition per account, so the
    subscriptions of rooms connected together are recorded in one transaction. Rows may outlive
    their subscription (a crash between steps); readers always check the calendar points back."""

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


class SubscriptionManager:
    """Subscription calls for one tenant at a time. The connector passes a Graph client
    that never waits on throttling (it schedules retries itself); calendar removal uses
    the interactive one."""

    def __init__(self, graph: GraphClient, *, index: SubscriptionIndex | None = None,
                 notification_url: str = "", lifecycle_notification_url: str = "") -> None:
        self.graph = graph
        self.index = index
        self.notification_url = notification_url
        self.lifecycle_notification_url = lifecycle_notification_url

    def create(self, tenant_id: str, mailbox_id: str, client_state: str, expires_at: datetime) -> GraphSubscription:
        """POST /subscriptions. Graph validates our notification URLs before answering 201.
        Not batched: batching subscription creation is undocumented (MICROSOFT-FACTS)."""
        body = self.graph.request(tenant_id, "POST", "subscriptions", json={
            "changeType": CHANGE_TYPES,
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.lifecycle_notification_url,
            "resource": f"/users/{mailbox_id}/events",
            "expirationDateTime": graph_time(expires_at),
            "clientState": client_state,
        })
        return GraphSubscription.from_graph(body or {})

    def renew(self, tenant_id: str, subscription_id: str, expires_at: datetime) -> GraphSubscription:
        body = self.graph.request(tenant_id, "PATCH", f"subscriptions/{subscription_id}",
                                  json={"expirationDateTime": graph_time(expires_at)})
        return GraphSubscription.from_graph(body or {"id": subscription_id})

    def reauthorize(self, tenant_id: str, subscription_id: str) -> None:
        """https://learn.microsoft.com/graph/api/subscription-reauthorize"""
        self.graph.request(tenant_id, "POST", f"subscriptions/{subscription_id}/reauthorize")

    def delete(self, tenant_id: str, subscription_id: str) -> bool:
        """DELETE; False when Graph says it is gone already."""
        try:
            self.graph.request(tenant_id, "DELETE", f"subscriptions/{subscription_id}")
        except GraphError as error:
            if error.status == 404:
                return False
            raise
        finally:
            if self.index is not None:
                self.index.remove(tenant_id, subscription_id)
        return True

    def list_all(self, tenant_id: str) -> list[GraphSubscription]:
        """Every subscription of this app in the tenant (all pages)."""
        return [GraphSubscription.from_graph(item) for item in self.graph.get_all(tenant_id, "subscriptions")]

    def is_ours(self, subscription: GraphSubscription) -> bool:
        """Created by this deployment: another deployment sharing the app registration
        (a staging slot) uses another notification URL, and its subscriptions are not ours."""
        return (subscription.notification_url or "").rstrip("/").lower() == self.notification_url.rstrip("/").lower()

    def delete_for(self, calendar: Calendar) -> None:
        """Delete the calendar's subscription in Graph; gone already is fine. When Graph
        cannot be reached the removal goes on: the connector's reconciliation deletes
        subscriptions Graph reports that we no longer know."""
        if not calendar.subscription_id:
            return
        try:
            self.delete(calendar.account_id, calendar.subscription_id)
        except GraphError as error:
            log.warning("could not delete subscription of %s now (%s); reconciliation will",
                        calendar.email, error.graph_code)
        except Exception as error:  # noqa: BLE001 - token refused etc.: same fallback as above
            log.warning("could not delete subscription of %s now (%s); reconciliation will",
                        calendar.email, type(error).__name__)
