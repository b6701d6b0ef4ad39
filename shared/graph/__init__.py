"""Microsoft Graph and Entra ID: the HTTP client, app-only tokens, subscriptions, mailbox look-ups, places.

Owns every conversation with Microsoft's services. No Graph JSON leaks past this package's
callers in the capability packages, and no table is read or written here.
"""

from __future__ import annotations

from shared.graph.client import GraphClient, GraphError, graph_moment, graph_time, header_seconds
from shared.graph.identity import AppToken, IdentityUnavailable, TokenProvider, TokenRefused
from shared.graph.subscriptions import RENEW_WITHIN, GraphSubscription, SubscriptionManager, subscription_expiry

__all__ = [
    "RENEW_WITHIN", "AppToken", "GraphClient", "GraphError", "GraphSubscription", "IdentityUnavailable",
    "SubscriptionManager", "TokenProvider", "TokenRefused", "graph_moment", "graph_time", "header_seconds",
    "subscription_expiry",
]
