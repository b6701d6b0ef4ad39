"""Who may reach which mailbox: the application permissions each kind of mailbox request needs
and the Exchange policies that stand between an app and a mailbox: missing, not enabled for
REST (hybrid / on-premises), an application access policy (`denied_mailboxes`), RBAC for
Applications scoped to rooms (`app_scope`), writes refused (`write_denied_mailboxes`).

Owns the answers Graph gives when a mailbox is out of reach (learn.microsoft.com/graph/errors,
learn.microsoft.com/exchange/permissions-exo/application-rbac). It must never change state.
"""

from __future__ import annotations

from m365sim.odata import GraphResult, graph_error
from m365sim.state import SimState, Tenant, User

CALENDAR_WRITE_ROLES = frozenset({"Calendars.ReadWrite"})
MAILBOX_SETTINGS_ROLES = frozenset({"MailboxSettings.Read", "MailboxSettings.ReadWrite"})


def access_denied() -> GraphResult:
    # Exchange application access policy / RBAC for Applications blocking this mailbox.
    return graph_error(403, "ErrorAccessDenied", "Access to OData is disabled.")


def write_denied() -> GraphResult:
    return graph_error(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")


def resolve_mailbox(state: SimState, tenant: Tenant, key: str) -> User | GraphResult:
    """The mailbox `key` (id, UPN or mail) names, or Graph's answer when the app cannot reach it."""
    with state.lock:
        user = tenant.find_user(key)
        if user is None:
            return graph_error(404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")
        knobs = tenant.knobs
        if tenant.listed(user, knobs.rest_disabled_mailboxes):
            return graph_error(404, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, "
                               "or is hosted on-premise.")
        if tenant.is_denied(user):
            return access_denied()
        # RBAC for Applications with a RecipientTypeDetails -eq 'RoomMailbox' scope: only rooms.
        if knobs.app_scope == "rooms" and tenant.purpose(user) != "room":
            return access_denied()
    return user


def may_write(state: SimState, tenant: Tenant, user: User) -> GraphResult | None:
    with state.lock:
        refused = tenant.listed(user, tenant.knobs.write_denied_mailboxes)
    return write_denied() if refused else None
