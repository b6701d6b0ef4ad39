"""Tenant readiness: how far the app reaches in the tenant, what is wrong with each room, and the scripts
that scope the app to rooms and make rooms behave.
"""

from __future__ import annotations

from shared.readiness.model import Access, Finding, Kind, ReadinessRecords
from shared.readiness.service import MAX_ROOMS_PER_CHECK, Readiness

__all__ = ["MAX_ROOMS_PER_CHECK", "Access", "Finding", "Kind", "Readiness", "ReadinessRecords"]
