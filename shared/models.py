"""Models of the domain and its two state machines.

Owns the account and calendar statuses, the transitions allowed between them, the kinds of
failure a calendar can be in (docs/architecture.md, "State machines"), and how moments are
written. Every status change goes through `AccountStatus.check` / `CalendarStatus.check`;
nothing else decides what may follow what.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from shared.errors import Conflict


@dataclass(frozen=True)
class Principal:
    """A signed-in person, or an application calling with its own token, as Easy Auth describes them."""

    name: str
    roles: frozenset[str]
    is_application: bool = False


class AccountStatus(StrEnum):
    PENDING_CONSENT = "pending_consent"
    VERIFIED = "verified"
    CONSENT_FAILED = "consent_failed"
    NEEDS_REAUTH = "needs_reauth"

    @property
    def label(self) -> str:
        return ACCOUNT_STATUS_LABELS[self]

    def check(self, target: AccountStatus) -> AccountStatus:
        if target not in ACCOUNT_TRANSITIONS[self]:
            raise Conflict(f"an account that is {self.label} cannot become {target.label}")
        return target


ACCOUNT_STATUS_LABELS = {
    AccountStatus.PENDING_CONSENT: "Waiting for consent",
    AccountStatus.VERIFIED: "Account Verified",
    AccountStatus.CONSENT_FAILED: "Consent failed",
    AccountStatus.NEEDS_REAUTH: "Needs re-authentication",
}

# Re-authorizing starts a new consent from any status; the callback then decides.
ACCOUNT_TRANSITIONS: dict[AccountStatus, set[AccountStatus]] = {
    AccountStatus.PENDING_CONSENT: {AccountStatus.PENDING_CONSENT, AccountStatus.VERIFIED,
                                    AccountStatus.CONSENT_FAILED},
    AccountStatus.CONSENT_FAILED: {AccountStatus.PENDING_CONSENT, AccountStatus.VERIFIED,
                                   AccountStatus.CONSENT_FAILED},
    AccountStatus.VERIFIED: {AccountStatus.VERIFIED, AccountStatus.NEEDS_REAUTH, AccountStatus.CONSENT_FAILED},
    AccountStatus.NEEDS_REAUTH: {AccountStatus.NEEDS_REAUTH, AccountStatus.VERIFIED,
                                 AccountStatus.CONSENT_FAILED},
}


class CalendarStatus(StrEnum):
    ADDED = "added"
    QUEUED = "queued"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"

    def check(self, target: CalendarStatus) -> CalendarStatus:
        if target not in CALENDAR_TRANSITIONS[self]:
            raise Conflict(f"a calendar that is {self.value} cannot become {target.value}")
        return target


# docs/architecture.md, "State machines": added -> queued -> connecting -> connected | failed; failed -> queued;
# connected -> queued when its subscription is removed or access revoked;
# connected -> connecting when the connector renews or re-creates its subscription.
CALENDAR_TRANSITIONS: dict[CalendarStatus, set[CalendarStatus]] = {
    CalendarStatus.ADDED: {CalendarStatus.QUEUED},
    CalendarStatus.QUEUED: {CalendarStatus.QUEUED, CalendarStatus.CONNECTING},
    CalendarStatus.CONNECTING: {CalendarStatus.CONNECTED, CalendarStatus.FAILED, CalendarStatus.QUEUED},
    CalendarStatus.CONNECTED: {CalendarStatus.QUEUED, CalendarStatus.CONNECTING, CalendarStatus.FAILED},
    CalendarStatus.FAILED: {CalendarStatus.QUEUED, CalendarStatus.CONNECTING},
}


class FailureKind(StrEnum):
    """Why a calendar is `failed`, which decides who acts: the connector retries `transient`
    ones itself; the others wait for the admin (re-authenticate, grant, fix the mailbox or scope)."""

    CONSENT = "consent"
    PERMISSION = "permission"
    MAILBOX = "mailbox"
    POLICY = "policy"
    TRANSIENT = "transient"

    @property
    def fixed_by_reauthorizing(self) -> bool:
        """The tenant stopped letting us in: consenting again fixes it."""
        return self in (FailureKind.CONSENT, FailureKind.PERMISSION)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, as the API and the tables store moments."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def iso_precise(moment: datetime) -> str:
    """ISO 8601 in UTC to the microsecond, for moments compared with each other (rounds, claims)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
