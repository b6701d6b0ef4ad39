"""Graph change-notification subscriptions of room calendars.

Owns creating, renewing and deleting subscriptions in Graph and the secret
`clientState` that proves a notification is ours (only its hash is stored).
It never writes the Calendars table; the connector does.
https://learn.microsoft.com/graph/change-notifications-delivery-webhooks
"""

from __future__ import annotations

import logging

from shared.calendars import Calendar
from shared.graph import GraphClient, GraphError

log = logging.getLogger("rcc.subscriptions")


class SubscriptionManager:
    def __init__(self, graph: GraphClient) -> None:
        self.graph = graph

    def delete_for(self, calendar: Calendar) -> None:
        """Delete the calendar's subscription in Graph; gone already is fine. When Graph
        cannot be reached the removal goes on: the connector's reconciliation deletes
        subscriptions Graph reports that we no longer know."""
        if not calendar.subscription_id:
            return
        try:
            self.graph.request(calendar.account_id, "DELETE", f"subscriptions/{calendar.subscription_id}")
        except GraphError as error:
            if error.status != 404:
                log.warning("could not delete subscription of %s now (%s); reconciliation will",
                            calendar.email, error.graph_code)
        except Exception as error:  # noqa: BLE001 - token refused etc.: same fallback as above
            log.warning("could not delete subscription of %s now (%s); reconciliation will",
                        calendar.email, type(error).__name__)
