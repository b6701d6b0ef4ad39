"""The composition root: every client the domain needs, built once per process.

Owns turning `Settings` into live clients (storage today; Graph and MSAL as the
domain grows). Nothing here runs at import: `get_context()` builds lazily on the
first invocation, so the Functions host can index the app with storage down.
Tests build their own `AppContext` from settings pointed at Azurite and m365sim.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from shared.settings import Settings
from shared.storage import StorageAccount


@dataclass
class AppContext:
    settings: Settings
    storage: StorageAccount

    @classmethod
    def build(cls, settings: Settings) -> AppContext:
        if settings.storage_connection_string:
            storage = StorageAccount.from_connection_string(settings.storage_connection_string)
        else:
            storage = StorageAccount.from_managed_identity(settings.storage_account_name or "")
        storage.ensure_created(container_names=(settings.uploads_container, *_extra_containers()))
        return cls(settings=settings, storage=storage)


def _extra_containers() -> tuple[str, ...]:
    from shared.storage import CONTAINER_NAMES

    return CONTAINER_NAMES


_context: AppContext | None = None
_lock = threading.Lock()


def get_context() -> AppContext:
    """The process-wide context, built on first use from the environment."""
    global _context
    if _context is None:
        with _lock:
            if _context is None:
                _context = AppContext.build(Settings.from_environment())
    return _context
