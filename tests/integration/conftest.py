"""Fixtures of the integration tests beyond the session-wide ones in tests/conftest.py."""

from __future__ import annotations

import pytest

from tests.conftest import ApiSession, signed_in_session


@pytest.fixture(scope="session")
def second_admin(stack) -> ApiSession:
    """Another administrator, for races and for consent bound to the admin who started it."""
    return signed_in_session(stack.base_url, "second.admin@contoso.onmicrosoft.com", ["administrator"])
