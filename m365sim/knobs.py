"""Per-tenant knobs: the faults, policies and limits a test or benchmark sets on a tenant
(`PATCH /_sim/tenants/{t}/knobs`).

Owns the knob names, their defaults and their validation (all or nothing). It must never act on
a knob itself: Graph, Entra and the notifier read them where they apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def update(self, changes: dict[str, Any]) -> None:
        """Validate every change first, then apply all of them (all or nothing)."""
        staged: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in self.__dataclass_fields__:
                raise KnobError(f"unknown knob {name!r}")
            if name in ("consent_revoked", "enforce_limits"):
                if not isinstance(value, bool):
                    raise KnobError(f"{name} must be a boolean")
            elif name in ("graph_5xx_rate", "throttle_rate"):
                if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
                    raise KnobError(f"{name} must be a number from 0 to 1")
                value = float(value)
            elif name in ("retry_after_seconds", "latency_ms", "subscription_write_limit"):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise KnobError(f"{name} must be a non-negative integer")
            else:
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise KnobError(f"{name} must be a list of strings")
                if name != "missing_permissions":
                    value = [v.lower() for v in value]
            staged[name] = value
        for name, value in staged.items():
            setattr(self, name, value)
