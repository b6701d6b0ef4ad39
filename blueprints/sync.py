"""Booking sync: the queue trigger that turns `calendar-changes` into delta rounds, and the sweep timer.

`sync_changes` runs once per message (the host retries a message that raises, then moves it to
`calendar-changes-poison`); `sync_sweep` fires on `%SYNC_SWEEP_SCHEDULE%` and asks for each
connected calendar's daily full round. Thin: the work is `shared/bookings/sync.py`.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.context import get_context

bp = func.Blueprint()
log = logging.getLogger("rcc.sync")


@bp.function_name("sync_changes")
@bp.queue_trigger(arg_name="message", queue_name="calendar-changes", connection="DataStorage")
def sync_changes(message: func.QueueMessage) -> None:
    outcome = get_context().sync.handle(message.get_body(), dequeue_count=message.dequeue_count or 1)
    log.info("calendar-changes message %s: %s", message.id, outcome)


@bp.function_name("sync_sweep")
@bp.timer_trigger(arg_name="timer", schedule="%SYNC_SWEEP_SCHEDULE%", run_on_startup=False)
def sync_sweep(timer: func.TimerRequest) -> None:
    log.info("sync sweep: %s", get_context().sync.sweep())
