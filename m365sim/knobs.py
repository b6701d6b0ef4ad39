"""Per-tenant knobs: the faults, policies and limits a test or benchmark sets on a tenant
(`PATCH /_sim/tenants/{t}/knobs`).

Owns the knob names, their defaults and their validation (all or nothing). It must never act on
a knob itself: Graph, Entra and the notifier read them where they apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# mailboxSettings.userPurpose values (learn.microsoft.com/graph/api/resources/mailboxsettings).
MAILBOX_PURPOSES = ("user", "linked", "shared", "room", "equipment", "others")
APP_SCOPES = ("all", "rooms")
_BOOLEANS = ("consent_revoked", "enforce_limits")
_RATES = ("graph_5xx_rate", "throttle_rate", "notification_drop_rate", "notification_duplicate_rate")
_COUNTS = ("retry_after_seconds", "latency_ms", "subscription_write_limit", "mailbox_request_limit",
           "stall_after_commit", "stall_seconds", "notification_max_delay_ms")


class KnobError(ValueError):
    """A knob update that is not understood; nothing was changed."""


@dataclass
class Knobs:
    consent_revoked: bool = False
    missing_permissions: list[str] = field(default_factory=list)
    graph_5xx_rate: float = 0.0
    throttle_rate: float = 0.0
    retry_after_seconds: int = 1
    latency_ms: int = 0
    denied_mailboxes: list[str] = field(default_factory=list)
    missing_mailboxes: list[str] = field(default_factory=list)
    enforce_limits: bool = True
    subscription_write_limit: int = 1000
    # Outlook: 10,000 requests per app per mailbox in 10 minutes.
    mailbox_request_limit: int = 10_000
    # "rooms": RBAC for Applications scopes the app to room mailboxes; others answer 403.
    app_scope: str = "all"
    rest_disabled_mailboxes: list[str] = field(default_factory=list)
    write_denied_mailboxes: list[str] = field(default_factory=list)
    mailbox_purposes: dict[str, str] = field(default_factory=dict)
    organizer_as_subject_mailboxes: list[str] = field(default_factory=list)
    # The next N Graph event writes commit, then their answer is held stall_seconds.
    stall_after_commit: int = 0
    stall_seconds: int = 60
    notification_drop_rate: float = 0.0
    notification_duplicate_rate: float = 0.0
    notification_max_delay_ms: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {name: _copy(getattr(self, name)) for name in self.__dataclass_fields__}

    def update(self, changes: dict[str, Any]) -> None:
        """Validate every change first, then apply all of them (all or nothing)."""
        staged: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in self.__dataclass_fields__:
                raise KnobError(f"unknown knob {name!r}")
            if name in _BOOLEANS:
                if not isinstance(value, bool):
                    raise KnobError(f"{name} must be a boolean")
            elif name in _RATES:
                if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                    raise KnobError(f"{name} must be a number from 0 to 1")
                value = float(value)
            elif name in _COUNTS:
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise KnobError(f"{name} must be a non-negative integer")
            elif name == "app_scope":
                if value not in APP_SCOPES:
                    raise KnobError(f"app_scope must be one of {', '.join(APP_SCOPES)}")
            elif name == "mailbox_purposes":
                if not isinstance(value, dict) or not all(
                        isinstance(k, str) and v in MAILBOX_PURPOSES for k, v in value.items()):
                    raise KnobError(f"mailbox_purposes must map emails to one of {', '.join(MAILBOX_PURPOSES)}")
                value = {k.lower(): v for k, v in value.items()}
            else:
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise KnobError(f"{name} must be a list of strings")
                if name != "missing_permissions":
                    value = [v.lower() for v in value]
            staged[name] = value
        for name, value in staged.items():
            setattr(self, name, value)


def _copy(value: Any) -> Any:
    return dict(value) if isinstance(value, dict) else list(value) if isinstance(value, list) else value
