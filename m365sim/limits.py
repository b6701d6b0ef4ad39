"""Graph's service limits as the simulator enforces them when `enforce_limits` is on: concurrent
requests per mailbox (4), requests per app per mailbox in 10 minutes (`mailbox_request_limit`,
Outlook's 10,000) and subscription writes per tenant
(learn.microsoft.com/graph/throttling-limits#outlook-service-limits).

Owns the counters on each tenant and the 429 answers with `Retry-After`. It must never sleep or
call out, and holds `SimState.lock` only to read and bump counters.
"""

from __future__ import annotations

import collections
import math
import time

from m365sim.odata import GraphResult, too_many_requests
from m365sim.state import MAX_CONCURRENT_PER_MAILBOX, SUBSCRIPTION_WRITE_WINDOW_SECONDS, SimState, Tenant

MAILBOX_REQUEST_WINDOW_SECONDS = 600.0


class Limits:
    def __init__(self, state: SimState) -> None:
        self.state = state

    def count_subscription_write(self, tenant: Tenant) -> GraphResult | None:
        """Subscription writes per app per tenant in a 20 s sliding window (Graph: ~1,000)."""
        now = time.monotonic()
        with self.state.lock:
            if not tenant.knobs.enforce_limits:
                return None
            window = tenant.subscription_writes
            while window and window[0] <= now - SUBSCRIPTION_WRITE_WINDOW_SECONDS:
                window.popleft()
            if len(window) >= tenant.knobs.subscription_write_limit:
                oldest = window[0] if window else now
                wait = oldest + SUBSCRIPTION_WRITE_WINDOW_SECONDS - now
                return too_many_requests(math.ceil(wait), "Too many subscription operations. Retry later.")
            window.append(now)
        return None

    def mailbox_key(self, tenant: Tenant, lowered: list[str], segments: list[str]) -> str | None:
        """Requests to a mailbox's Outlook data (users/{id}/...) count against its limits."""
        if len(lowered) >= 3 and lowered[0] == "users":
            with self.state.lock:
                user = tenant.find_user(segments[1])
            return user.id if user else segments[1].lower()
        return None

    def enter_mailbox(self, tenant: Tenant, key: str) -> GraphResult | None:
        """Admit one request to the mailbox, or the 429 that refuses it. Only admitted requests
        count towards the 10-minute budget."""
        now = time.monotonic()
        with self.state.lock:
            current = tenant.inflight.get(key, 0)
            enforce = tenant.knobs.enforce_limits
            if enforce and current >= MAX_CONCURRENT_PER_MAILBOX:
                return too_many_requests(1, "Application is over its MailboxConcurrency limit.")
            window = tenant.mailbox_requests.setdefault(key, collections.deque())
            while window and window[0] <= now - MAILBOX_REQUEST_WINDOW_SECONDS:
                window.popleft()
            if enforce and len(window) >= tenant.knobs.mailbox_request_limit:
                wait = (window[0] if window else now) + MAILBOX_REQUEST_WINDOW_SECONDS - now
                return too_many_requests(math.ceil(wait), "Application is over its MailboxRequests limit.",
                                         code="ApplicationThrottled")
            window.append(now)
            tenant.inflight[key] = current + 1
            return None

    def leave_mailbox(self, tenant: Tenant, key: str) -> None:
        with self.state.lock:
            remaining = tenant.inflight.get(key, 1) - 1
            if remaining <= 0:
                tenant.inflight.pop(key, None)
            else:
                tenant.inflight[key] = remaining
