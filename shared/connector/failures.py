"""Why a calendar could not be connected, in words an admin can act on, and when to try again.

Owns turning what went wrong (Graph's answer, a refused token, a deferral) into a `Failure`:
its kind (`FailureKind`), the reason shown on the page, and for transient ones the moment of
the next attempt (exponential backoff between runs, never before Retry-After). It never
writes anything; the connector saves the failure on the calendar.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.connector.gate import Deferred
from shared.graph import GraphError, IdentityUnavailable
from shared.models import FailureKind, utc_now

RETRY_BASE_SECONDS = 60
RETRY_MAX_SECONDS = 3600


class ConsentLost(Exception):  # noqa: N818
    """The tenant no longer lets the app in (token refused, or Graph refuses the token)."""


@dataclass
class Failure(Exception):  # noqa: N818
    kind: FailureKind
    reason: str
    retry_at: datetime | None = None


def retry_delay_seconds(attempts: int, retry_after: float | None = None) -> float:
    """Exponential backoff between runs (1, 2, 4 … 60 minutes), never before Retry-After."""
    backoff = min(RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1), RETRY_MAX_SECONDS)
    return max(float(backoff), retry_after or 0.0)


def transient(reason: str, seconds: float = RETRY_BASE_SECONDS) -> Failure:
    return Failure(FailureKind.TRANSIENT, reason, utc_now() + timedelta(seconds=seconds))


def explain(error: Exception, email: str, attempts: int, step: str) -> Failure:
    """The failure `error` means for the room `email` at `step` (its `attempts` so far). Anything
    that is not a known failure is raised again: a bug must not look like Graph's fault."""
    if isinstance(error, Failure):
        return error
    if isinstance(error, ConsentLost):
        return Failure(FailureKind.CONSENT, "consent revoked: re-authenticate the account")
    if isinstance(error, Deferred):
        delay = max(0.0, (error.retry_at - utc_now()).total_seconds())
        retry_at = utc_now() + timedelta(seconds=retry_delay_seconds(1, delay))
        return Failure(FailureKind.TRANSIENT, f"{error.reason}, retrying at {retry_at:%H:%M} UTC", retry_at)
    if isinstance(error, IdentityUnavailable):
        retry_at = utc_now() + timedelta(seconds=retry_delay_seconds(attempts))
        return Failure(FailureKind.TRANSIENT,
                       f"Microsoft's sign-in service is unavailable, retrying at {retry_at:%H:%M} UTC", retry_at)
    if not isinstance(error, GraphError):
        raise error
    if error.is_access_policy_denial:
        return Failure(FailureKind.POLICY, f"access to {email} is denied by the tenant's application access policy "
                                           "(or RBAC for Applications): ask the Exchange admin to include this room "
                                           "in the app's scope, then connect again")
    if error.status == 403:
        return Failure(FailureKind.PERMISSION, f"the app lacks the permission to {step} ({error.graph_code}): grant "
                                               "Calendars.ReadWrite and User.Read.All, then re-authenticate the "
                                               "account")
    if error.graph_code == "MailboxNotEnabledForRESTAPI":
        return Failure(FailureKind.MAILBOX, f"{email} is on-premises or hybrid: Microsoft Graph cannot reach its "
                                            "calendar (MailboxNotEnabledForRESTAPI); move it to Exchange Online or "
                                            "leave it out")
    if error.status == 404:
        return Failure(FailureKind.MAILBOX, f"mailbox not found: {email} does not exist in the tenant or has no "
                                            f"Exchange Online mailbox ({error.graph_code})")
    retry_at = utc_now() + timedelta(seconds=retry_delay_seconds(attempts, error.retry_after))
    if error.status == 429:
        text = "throttled by Microsoft Graph"
    elif error.graph_code == "ValidationError":
        text = ("Microsoft Graph could not validate the notification URL (check PUBLIC_BASE_URL is reachable "
                "from the internet)")
    elif error.status == 0:
        text = "Microsoft Graph could not be reached"
    else:
        text = f"Microsoft Graph answered {error.status} {error.graph_code} while trying to {step}"
    return Failure(FailureKind.TRANSIENT, f"{text}, retrying at {retry_at:%H:%M} UTC", retry_at)
