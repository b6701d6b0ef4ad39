"""Who may reach which mailbox: the application permissions each kind of mailbox request needs
and the Exchange policies that stand between an app and a mailbox (missing, denied).

Owns the answers Graph gives when a mailbox is out of reach (learn.microsoft.com/graph/errors,
learn.microsoft.com/exchange/permissions-exo/application-rbac). It must never change state.
"""

from __future__ import annotations

from m365sim.odata import GraphResult, graph_error
from m365sim.state import SimState, Tenant, User


def access_denied() -> GraphResult:
    # Exchange application access policy / RBAC for Applications blocking this mailbox.
    return graph_error(403, "ErrorAccessDenied", "Access to OData is disabled.")


def resolve_mailbox(state: SimState, tenant: Tenant, key: str) -> User | GraphResult:
    """The mailbox `key` (id, UPN or mail) names, or Graph's answer when the app cannot reach it."""
    with state.lock:
        user = tenant.find_user(key)
        denied = user is not None and tenant.is_denied(user)
    if user is None:
        return graph_error(404, "ErrorInvalidUser", f"The requested user '{key}' is invalid.")
    if denied:
        return access_denied()
    return user
