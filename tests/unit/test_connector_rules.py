"""Pure rules of the connector and webhooks: clientState derivation, backoff, the tenant
gate's Retry-After and write window, Graph times, notification body checks."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from shared.connector import MAX_CONCURRENT_PER_MAILBOX, Deferred, RunCounts, TenantGate, retry_delay_seconds
from shared.errors import Invalid, TooLarge
from shared.graph import GraphError, graph_moment, subscription_expiry
from shared.graph.subscriptions import MAX_EVENT_SUBSCRIPTION_MINUTES
from shared.models import parse_iso, utc_now
from shared.notifications import client_state_for, client_state_hash, client_state_matches, parse_body

KEY = b"k" * 32


def test_client_state_is_derived_per_room_and_nonce_and_fits_graph():
    state = client_state_for(KEY, "acct", "room@x.com", "n1")
    assert state == client_state_for(KEY, "acct", "room@x.com", "n1")
    assert len(state) <= 128 and state.isascii()
    assert state != client_state_for(KEY, "acct", "room@x.com", "n2")
    assert state != client_state_for(KEY, "acct", "other@x.com", "n1")
    assert state != client_state_for(b"j" * 32, "acct", "room@x.com", "n1")


def test_client_state_matches_only_its_hash():
    state = client_state_for(KEY, "acct", "room@x.com", "n1")
    stored = client_state_hash(state)
    assert stored != state
    assert client_state_matches(state, stored)
    assert not client_state_matches(state + "x", stored)
    assert not client_state_matches(None, stored)
    assert not client_state_matches(state, None)
    assert not client_state_matches("\udcff", stored)


def test_subscription_expiry_stays_inside_graphs_limit():
    now = utc_now()
    expiry = subscription_expiry(now)
    assert now + timedelta(days=6) < expiry < now + timedelta(minutes=MAX_EVENT_SUBSCRIPTION_MINUTES)


def test_graph_times_with_seven_fraction_digits_are_read():
    assert graph_moment("2026-11-25T10:30:00.1234567Z") == "2026-11-25T10:30:00Z"
    assert graph_moment("2026-11-25T10:30:00Z") == "2026-11-25T10:30:00Z"
    assert graph_moment("nonsense") is None
    assert graph_moment(None) is None


def test_backoff_doubles_caps_and_never_undercuts_retry_after():
    assert retry_delay_seconds(1) == 60
    assert retry_delay_seconds(2) == 120
    assert retry_delay_seconds(20) == 3600
    assert retry_delay_seconds(1, retry_after=900) == 900


def test_the_gate_waits_out_retry_after_before_the_next_request():
    gate = TenantGate()
    counts = RunCounts()
    sent: list[float] = []

    def send() -> str:
        sent.append(time.monotonic())
        if len(sent) == 1:
            raise GraphError(429, "TooManyRequests", "slow down", retry_after=0.3)
        return "ok"

    assert gate.call(send, counts=counts, deadline=time.monotonic() + 60) == "ok"
    assert sent[1] - sent[0] >= 0.3
    assert counts.throttled == 1


def test_the_gate_defers_what_cannot_wait_within_the_run():
    gate = TenantGate()
    gate.block_for(120)
    with pytest.raises(Deferred) as deferred:
        gate.call(lambda: "never", counts=RunCounts(), deadline=time.monotonic() + 600)
    assert deferred.value.retry_at > utc_now() + timedelta(seconds=100)


def test_the_gate_does_not_retry_permanent_errors():
    calls = []

    def send() -> None:
        calls.append(1)
        raise GraphError(404, "ResourceNotFound", "gone")

    with pytest.raises(GraphError):
        TenantGate().call(send, counts=RunCounts(), deadline=time.monotonic() + 60)
    assert len(calls) == 1


def test_the_gate_keeps_subscription_writes_under_the_window_limit():
    gate = TenantGate(write_limit=2, write_window_seconds=60)
    counts = RunCounts()
    deadline = time.monotonic() + 1
    gate.call(lambda: None, counts=counts, deadline=deadline, write=True)
    gate.call(lambda: None, counts=counts, deadline=deadline, write=True)
    with pytest.raises(Deferred):
        gate.call(lambda: None, counts=counts, deadline=deadline, write=True)
    gate.call(lambda: None, counts=counts, deadline=deadline)  # reads are not limited by it


class _MailboxHolders:
    """Requests that hold every slot of one mailbox until released."""

    def __init__(self, gate: TenantGate, mailbox: str) -> None:
        self.release = threading.Event()
        self.sending = threading.Semaphore(0)
        self.threads = [threading.Thread(target=gate.call, args=(self._send,), kwargs={
            "counts": RunCounts(), "deadline": time.monotonic() + 60, "mailbox": mailbox})
            for _ in range(MAX_CONCURRENT_PER_MAILBOX)]
        for thread in self.threads:
            thread.start()
        for _ in self.threads:
            assert self.sending.acquire(timeout=10)

    def _send(self) -> None:
        self.sending.release()
        assert self.release.wait(timeout=30)

    def finish(self) -> None:
        self.release.set()
        for thread in self.threads:
            thread.join(timeout=10)


class _WatchedGate(TenantGate):
    """Says when a request has passed the Retry-After check and taken its write slot."""

    def __init__(self) -> None:
        super().__init__()
        self.past_first_check = threading.Event()

    def _take_write_slot(self, deadline: float) -> None:
        super()._take_write_slot(deadline)
        self.past_first_check.set()


def test_a_retry_after_that_arrives_while_waiting_for_a_mailbox_slot_is_honoured():
    gate = _WatchedGate()
    holders = _MailboxHolders(gate, "room@x.com")
    sent: list[float] = []
    waiting = threading.Thread(target=gate.call, args=(lambda: sent.append(time.monotonic()),), kwargs={
        "counts": RunCounts(), "deadline": time.monotonic() + 60, "mailbox": "room@x.com", "write": True})
    try:
        waiting.start()
        assert gate.past_first_check.wait(timeout=10)
        # Another thread's request is answered 429 while this one waits for the mailbox.
        blocked_from = time.monotonic()
        gate.block_for(0.3)
    finally:
        holders.finish()
    waiting.join(timeout=10)
    assert sent and sent[0] >= blocked_from + 0.3


def test_waiting_for_a_busy_mailbox_never_passes_the_deadline():
    gate = TenantGate()
    holders = _MailboxHolders(gate, "room@x.com")
    outcome: list[BaseException | str] = []

    def call() -> None:
        try:
            outcome.append(gate.call(lambda: "sent", counts=RunCounts(), deadline=time.monotonic() + 0.2,
                                     mailbox="room@x.com"))
        except Deferred as deferred:
            outcome.append(deferred)

    waiting = threading.Thread(target=call)
    try:
        waiting.start()
        waiting.join(timeout=10)
        assert not waiting.is_alive()
    finally:
        holders.finish()
        waiting.join(timeout=10)
    assert len(outcome) == 1 and isinstance(outcome[0], Deferred)


def test_writes_on_their_way_count_against_the_window():
    gate = TenantGate(write_limit=1, write_window_seconds=60)
    sending, answered = threading.Event(), threading.Event()

    def send() -> None:
        sending.set()
        assert answered.wait(timeout=30)

    first = threading.Thread(target=gate.call, args=(send,), kwargs={
        "counts": RunCounts(), "deadline": time.monotonic() + 60, "write": True})
    first.start()
    try:
        assert sending.wait(timeout=10)
        with pytest.raises(Deferred):
            gate.call(lambda: None, counts=RunCounts(), deadline=time.monotonic() + 0.2, write=True)
    finally:
        answered.set()
        first.join(timeout=10)
    # Answered, it still fills the window (counted from its answer).
    with pytest.raises(Deferred):
        gate.call(lambda: None, counts=RunCounts(), deadline=time.monotonic() + 0.2, write=True)


@pytest.mark.parametrize("body, error", [
    (b"", Invalid), (b"{", Invalid), (b"[]", Invalid), (b'{"value": 1}', Invalid),
    (b'{"value": [' + b"1," * 1000 + b"1]}", TooLarge), (b"x" * (1024 * 1024 + 1), TooLarge),
])
def test_notification_bodies_that_are_not_graphs_are_refused(body, error):
    with pytest.raises(error):
        parse_body(body)


def test_a_graph_notification_body_is_read():
    assert parse_body(b'{"value": [{"subscriptionId": "a"}]}') == [{"subscriptionId": "a"}]
    assert parse_iso(graph_moment("2026-01-01T00:00:00.0000000Z")) is not None
