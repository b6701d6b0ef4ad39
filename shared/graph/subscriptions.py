"""Graph change-notification subscriptions on room calendars' events.

Owns the Graph calls that create, renew, reauthorize, list and delete subscriptions and the
lifetime rules Graph sets for them. It never writes a table: the connector records what it
made (the calendar, the webhooks' index), and the clientState is derived by
`shared.notifications.client_state`.
https://learn.microsoft.com/graph/change-notifications-delivery-webhooks
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.graph.client import GraphClient, GraphError, graph_moment, graph_time
from shared.models import utc_now

# Outlook event subscriptions live at most 10,080 minutes; ask for a little less so
# clock skew between us and Graph never makes the request invalid.
# https://learn.microsoft.com/graph/api/resources/subscription#subscription-lifetime
MAX_EVENT_SUBSCRIPTION_MINUTES = 10080
EXPIRY_MARGIN_MINUTES = 30
# Renew subscriptions that expire within this window ("renewed well before expiry").
RENEW_WITHIN = timedelta(days=1)
CHANGE_TYPES = "created,updated,deleted"


def subscription_expiry(now: datetime | None = None) -> datetime:
    return (now or utc_now()) + timedelta(minutes=MAX_EVENT_SUBSCRIPTION_MINUTES - EXPIRY_MARGIN_MINUTES)


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


class SubscriptionManager:
    """Subscription calls for one tenant at a time. `max_wait_seconds` is the throttling wait a
    caller allows (the connector passes 0: its gate waits out Retry-After and schedules retries)."""

    def __init__(self, graph: GraphClient, *, notification_url: str, lifecycle_notification_url: str) -> None:
        self.graph = graph
        self.notification_url = notification_url
        self.lifecycle_notification_url = lifecycle_notification_url

    def create(self, tenant_id: str, mailbox_id: str, client_state: str, expires_at: datetime, *,
               max_wait_seconds: float | None = None) -> GraphSubscription:
        """POST /subscriptions. Graph validates our notification URLs before answering 201.
        Not batched: batching subscription creation is undocumented."""
        body = self.graph.request(tenant_id, "POST", "subscriptions", json={
            "changeType": CHANGE_TYPES,
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.lifecycle_notification_url,
            "resource": f"/users/{mailbox_id}/events",
            "expirationDateTime": graph_time(expires_at),
            "clientState": client_state,
        }, max_wait_seconds=max_wait_seconds)
        return GraphSubscription.from_graph(body or {})

    def renew(self, tenant_id: str, subscription_id: str, expires_at: datetime, *,
              max_wait_seconds: float | None = None) -> GraphSubscription:
        body = self.graph.request(tenant_id, "PATCH", f"subscriptions/{subscription_id}",
                                  json={"expirationDateTime": graph_time(expires_at)},
                                  max_wait_seconds=max_wait_seconds)
        return GraphSubscription.from_graph(body or {"id": subscription_id})

    def reauthorize(self, tenant_id: str, subscription_id: str, *, max_wait_seconds: float | None = None) -> None:
        """https://learn.microsoft.com/graph/api/subscription-reauthorize"""
        self.graph.request(tenant_id, "POST", f"subscriptions/{subscription_id}/reauthorize",
                           max_wait_seconds=max_wait_seconds)

    def delete(self, tenant_id: str, subscription_id: str, *, max_wait_seconds: float | None = None) -> bool:
        """DELETE; False when Graph says it is gone already."""
        try:
            self.graph.request(tenant_id, "DELETE", f"subscriptions/{subscription_id}",
                               max_wait_seconds=max_wait_seconds)
        except GraphError as error:
            if error.status == 404:
                return False
            raise
        return True

    def list_all(self, tenant_id: str, *, max_wait_seconds: float | None = None) -> list[GraphSubscription]:
        """Every subscription of this app in the tenant (all pages)."""
        return [GraphSubscription.from_graph(item)
                for item in self.graph.get_all(tenant_id, "subscriptions", max_wait_seconds=max_wait_seconds)]

    def is_ours(self, subscription: GraphSubscription) -> bool:
        """Created by this deployment: another deployment sharing the app registration
        (a staging slot) uses another notification URL, and its subscriptions are not ours."""
        return (subscription.notification_url or "").rstrip("/").lower() == self.notification_url.rstrip("/").lower()
