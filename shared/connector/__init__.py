"""The connector: the timer's work of connecting queued calendars and keeping their subscriptions alive.

Owns the run (`run`), Graph's limits per tenant (`gate`), claims on calendars (`claims`),
mailbox look-ups (`lookups`), subscriptions (`subscribe`), what failures mean (`failures`) and
run records (`runs`).
"""

from __future__ import annotations

from shared.connector.failures import Failure, retry_delay_seconds
from shared.connector.gate import MAX_CONCURRENT_PER_MAILBOX, Deferred, TenantGate
from shared.connector.run import Connector
from shared.connector.runs import RunRecords
from shared.connector.subscribe import delete_subscription_quietly
from shared.connector.work import RunCounts, Settled, TenantRun

__all__ = ["MAX_CONCURRENT_PER_MAILBOX", "Connector", "Deferred", "Failure", "RunCounts", "RunRecords", "Settled",
           "TenantGate", "TenantRun", "delete_subscription_quietly", "retry_delay_seconds"]
