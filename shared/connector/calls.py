"""The connector's Graph requests to one tenant: through the tenant's gate, with consent loss noticed once.

Owns sending one request the way every connector step does (admitted by the gate, a stale
token refreshed once, a refused token or a 401 read as "the tenant stopped letting us in"),
marking the account `needs_reauth` the first time a run sees that, and turning any error into
the `Failure` a calendar shows. It never decides which calendar to work on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from shared.accounts import AccountService
from shared.calendars import Calendar
from shared.connector.failures import ConsentLost, Failure, explain, transient
from shared.connector.work import TenantRun
from shared.errors import ConcurrencyConflict
from shared.graph import GraphError, TokenProvider, TokenRefused

log = logging.getLogger("rcc.connector")

T = TypeVar("T")

REAUTHENTICATE = "consent revoked or the app's token refused: re-authenticate the account"


class GraphCalls:
    def __init__(self, tokens: TokenProvider, account_service: AccountService) -> None:
        self.tokens = tokens
        self.account_service = account_service

    def call(self, work: TenantRun, send: Callable[[], T], *, mailbox: str | None = None,
             write: bool = False) -> T:
        if work.consent_lost.is_set():
            raise ConsentLost("consent was revoked")

        def refresh() -> None:
            self.tokens.forget(work.tenant_id)

        try:
            return work.gate.call(send, counts=work.counts, deadline=work.deadline, mailbox=mailbox, write=write,
                                  on_unauthorized=refresh)
        except TokenRefused as refused:
            if refused.consent_problem:
                raise ConsentLost(refused.message) from None
            raise transient(f"the tenant refused a token: {refused.message}") from None
        except GraphError as error:
            if error.status == 401:
                raise ConsentLost("Microsoft Graph refused the app's token: consent was revoked") from None
            raise

    def consent_lost(self, work: TenantRun, detail: str) -> None:
        """Stop the tenant's run and mark its account `needs_reauth` (once per run)."""
        if work.consent_lost.is_set():
            return
        work.consent_lost.set()
        accounts = self.account_service.accounts
        for _ in range(3):
            account = accounts.find(work.account.account_id)
            if account is None:
                return
            try:
                self.account_service.mark_needs_reauth(account, REAUTHENTICATE)
                log.warning("account %s needs re-authentication: %s", account.account_id, detail)
                return
            except ConcurrencyConflict:
                continue

    def failure_of(self, work: TenantRun, error: Exception, calendar: Calendar, step: str) -> Failure:
        """A reason an admin can act on, and when to try again (transient ones only)."""
        if isinstance(error, ConsentLost):
            self.consent_lost(work, str(error))
        return explain(error, calendar.email, calendar.attempts, step)
