"""Signing and checking the admin-consent state."""

from __future__ import annotations

import pytest

from shared.accounts import InvalidState, sign_state, verify_state_signature

KEY = b"k" * 32


def test_a_signed_state_verifies_to_its_nonce_and_account() -> None:
    state = sign_state(KEY, "nonce-1", "account-1", expires_at=2_000_000_000)
    assert verify_state_signature(KEY, state, now=1_999_999_999) == ("nonce-1", "account-1")


def test_a_tampered_state_is_refused() -> None:
    state = sign_state(KEY, "nonce-1", "account-1", expires_at=2_000_000_000)
    other = sign_state(KEY, "nonce-1", "account-2", expires_at=2_000_000_000)
    forged = other.split(".")[0] + "." + state.split(".")[1]
    with pytest.raises(InvalidState) as refused:
        verify_state_signature(KEY, forged, now=0)
    assert refused.value.outcome == "invalid_state"


def test_a_state_signed_with_another_key_is_refused() -> None:
    state = sign_state(b"x" * 32, "nonce-1", "account-1", expires_at=2_000_000_000)
    with pytest.raises(InvalidState):
        verify_state_signature(KEY, state, now=0)


def test_an_expired_state_is_refused() -> None:
    state = sign_state(KEY, "nonce-1", "account-1", expires_at=1000)
    with pytest.raises(InvalidState) as refused:
        verify_state_signature(KEY, state, now=1001)
    assert refused.value.outcome == "expired"


@pytest.mark.parametrize("state", ["", "abc", "a.b.c", "x" * 600, "####.####", "\x08GÐ.Û\U000f4451", "é.é"])
def test_garbage_state_is_refused(state: str) -> None:
    with pytest.raises(InvalidState):
        verify_state_signature(KEY, state, now=0)
