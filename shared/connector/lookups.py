"""Looking the rooms of one chunk up in one `$batch`, through the tenant's gate.

Owns sending the look-up (`shared.graph.mailboxes` says what to ask and how to read it),
retrying the items Graph throttled inside the batch (after blocking the tenant for their
Retry-After), and giving each room its outcome: a mailbox to subscribe to, or a `Failure`.
It never writes a calendar.
"""

from __future__ import annotations

from collections.abc import Iterator

from shared.calendars import Calendar
from shared.connector.calls import GraphCalls
from shared.connector.failures import ConsentLost, Failure
from shared.connector.gate import MAX_TRIES_PER_CALL, Deferred
from shared.connector.work import TenantRun
from shared.graph import GraphClient, GraphError, header_seconds
from shared.graph.mailboxes import RETRYABLE_ITEM_STATUSES, Mailbox, NotARoom, lookup_outcome, lookup_requests
from shared.models import FailureKind, utc_now


def look_up_mailboxes(calls: GraphCalls, graph: GraphClient, work: TenantRun,
                      calendars: list[Calendar]) -> Iterator[tuple[Calendar, Mailbox | Failure]]:
    """The mailbox, its calendar access and its place, for up to 6 rooms in one `$batch`
    (18 reads in one round trip). Items throttled inside the batch are retried."""
    pending = lookup_requests([calendar.email for calendar in calendars])
    answers: dict[str, dict] = {}
    batch_error: Exception | None = None
    for _ in range(MAX_TRIES_PER_CALL):
        if not pending:
            break
        body = {"requests": [{"id": key, "method": method, "url": url} for key, (method, url) in pending.items()]}
        try:
            reply = calls.call(work, lambda body=body: graph.request(work.tenant_id, "POST", "$batch", json=body,
                                                                     max_wait_seconds=0))
        except (GraphError, Deferred, ConsentLost, Failure) as error:
            batch_error = error
            break
        throttled_for = 0.0
        for item in (reply or {}).get("responses") or []:
            key, status = str(item.get("id")), int(item.get("status") or 0)
            if key not in pending:
                continue
            answers[key] = item
            if status in RETRYABLE_ITEM_STATUSES:
                if status == 429:
                    work.counts.add("throttled")
                retry_after = header_seconds(item.get("headers") or {})
                throttled_for = max(throttled_for, retry_after if retry_after is not None else 2.0)
                continue
            del pending[key]
        if throttled_for:
            work.gate.block_for(throttled_for)
    for number, calendar in enumerate(calendars):
        if batch_error is not None:
            yield calendar, calls.failure_of(work, batch_error, calendar, "look up the mailbox")
            continue
        outcome = lookup_outcome(calendar.email, answers, number)
        if isinstance(outcome, NotARoom):
            yield calendar, Failure(FailureKind.MAILBOX, outcome.reason)
        elif isinstance(outcome, Mailbox):
            yield calendar, outcome
        else:
            error = outcome.error if outcome.error is not None else Deferred(utc_now(),
                                                                               "Microsoft Graph did not answer")
            yield calendar, calls.failure_of(work, error, calendar, outcome.step)
