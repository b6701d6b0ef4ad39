"""Timer triggers: fire on the NCRONTAB schedule, keep the schedule status, flag past-due runs.

Owns one scheduler thread per timer function. The last run's status
(`{"Last", "Next", "LastUpdated"}`) is kept in the host storage like the real host's
schedule monitor, so a devhost that was down when an occurrence was due fires once
at start with `past_due=True`; so does an occurrence missed while the previous run
was still running. A failed run is not retried (the host doesn't either).
https://learn.microsoft.com/azure/azure-functions/functions-bindings-timer#usage
It never runs two scheduled invocations of one function at once.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timezone
from typing import Any

import azure.functions as func

from devhost.functions import FunctionSpec, Invoker, Outcome, StartupError
from devhost.hoststorage import HostStorage
from shared.ncrontab import Schedule, ScheduleError

log = logging.getLogger("devhost.timers")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class TimerScheduler:
    def __init__(self, spec: FunctionSpec, host_storage: HostStorage, invoker: Invoker,
                 stop: threading.Event) -> None:
        self.spec = spec
        try:
            self.schedule = Schedule.parse(str(spec.trigger.get("schedule") or ""))
        except ScheduleError as error:
            raise StartupError(f"function {spec.name}: {error}") from None
        self.run_on_startup = bool(spec.trigger.get("runOnStartup"))
        # useMonitor defaults to true for schedules longer than a minute; devhost always keeps status
        # because it is cheap and past-due detection needs it.
        self.host_storage = host_storage
        self.invoker = invoker
        self.stop = stop
        self._running = threading.Lock()

    def request(self, past_due: bool, status: dict[str, Any] | None) -> func.timer.TimerRequest:
        return func.timer.TimerRequest(past_due=past_due, schedule_status=status or {},
                                 schedule={"AdjustForDST": True})

    def fire_now(self) -> Outcome:
        """The admin API's "run now": not past due, and the schedule status stays as it is."""
        return self.invoker.invoke(self.spec, self.request(False, self.host_storage.read_timer_status(
            self.spec.function_id)), reason="Manual invocation")

    def _run(self, occurrence: datetime, past_due: bool, reason: str) -> None:
        try:
            status = self.host_storage.read_timer_status(self.spec.function_id)
        except Exception:  # noqa: BLE001 - storage down: run anyway, as the host's in-memory schedule would
            log.exception("timer %s: could not read its status", self.spec.name)
            status = None
        with self._running:
            self.invoker.invoke(self.spec, self.request(past_due, status), reason)
        try:
            self._save(last=occurrence)
        except Exception:  # noqa: BLE001
            log.exception("timer %s: could not save its status", self.spec.name)

    def _save(self, last: datetime) -> None:
        next_occurrence = self.schedule.next_after(last)
        self.host_storage.write_timer_status(self.spec.function_id, {
            "Last": last.isoformat(), "Next": next_occurrence.isoformat(), "LastUpdated": _now().isoformat(),
        })

    def run(self) -> None:
        log.info("Timer %s: schedule %r (UTC)", self.spec.name, self.schedule.expression)
        try:
            status = self.host_storage.read_timer_status(self.spec.function_id)
            if self.run_on_startup:
                self._run(_now(), False, "Timer fired at startup (runOnStartup)")
            else:
                due = _parse_time((status or {}).get("Next"))
                if due is not None and due < _now():
                    self._run(due, True, "Timer fired for an occurrence missed while the host was down")
            next_occurrence = self.schedule.next_after(_now())
            while not self.stop.is_set():
                if self.stop.wait(max(0.0, (next_occurrence - _now()).total_seconds())):
                    break
                self._run(next_occurrence, False, f"Timer fired at {next_occurrence.isoformat()}")
                following = self.schedule.next_after(next_occurrence)
                if following < _now().replace(microsecond=0):
                    # The run outlasted the next occurrence: one past-due run now, then back on schedule.
                    self._run(following, True, "Timer fired for an occurrence missed during the previous run")
                next_occurrence = self.schedule.next_after(_now())
        except Exception:  # noqa: BLE001 - a scheduler must say why it stopped
            log.exception("timer %s stopped", self.spec.name)
