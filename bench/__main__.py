"""`python -m bench [--size small|full] [--only FIGURE ...]`: the benchmarks of `make bench`.

Owns one benchmark run: it starts the local system (`Stack.start(in_memory=True,
free_ports=True, with_sim=True)`: Azurite, m365sim and devhost on loopback, devhost with one
language worker process per core unless FUNCTIONS_WORKER_PROCESS_COUNT says), measures each
figure group with its baseline in the same run, prints one table with the machine's core
count and the library versions, and writes it as JSON under `bench/results/`. A figure that
fails is printed as FAILED with the reason and the others still run; the exit code is 1 then.
It never asserts a timing and leaves no process behind (the stack is stopped on the way out).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable

from bench import figures_connect, figures_import, figures_list, figures_sync, figures_writes
from bench.report import Figure, machine, render, write_json
from bench.support import Bench
from devhost.stack import Stack
from devhost.workers import SETTING as WORKERS_SETTING

# The sizes (full) and a quick look that fits in `make test` on a 2-core machine (small).
SIZES: dict[str, dict[str, int]] = {
    "full": {"import_rows": 50_000, "row_at_a_time_rows": 5_000, "memory_small": 10_000, "memory_large": 100_000,
             "connect_calendars": 10_000, "serial_calendars": 100, "tenants": 10, "calendars_per_tenant": 1_000,
             "throttled_calendars": 1_000, "list_calendars": 10_000, "spaces": 10_000,
             "sync_latency_rooms": 500, "sync_booking_rate": 50, "sync_booking_seconds": 60, "sync_bare_rounds": 100,
             "sync_initial_rooms": 1_000, "sync_bookings_per_room": 50,
             "write_spaces": 100, "writes": 1_000, "storm_spaces": 100},
    "small": {"import_rows": 2_000, "row_at_a_time_rows": 500, "memory_small": 1_000, "memory_large": 10_000,
              "connect_calendars": 120, "serial_calendars": 12, "tenants": 3, "calendars_per_tenant": 60,
              "throttled_calendars": 60, "list_calendars": 1_000, "spaces": 1_000,
              "sync_latency_rooms": 50, "sync_booking_rate": 10, "sync_booking_seconds": 15, "sync_bare_rounds": 40,
              "sync_initial_rooms": 100, "sync_bookings_per_room": 20,
              "write_spaces": 20, "writes": 200, "storm_spaces": 10},
}

GROUPS: dict[str, tuple[list[str], Callable[[Bench, dict[str, int]], list[Figure]]]] = {
    "import": (["CSV import vs row-at-a-time", "CSV import vs raw Azurite EGT"],
               lambda b, s: figures_import.import_throughput(b, s["import_rows"], s["row_at_a_time_rows"])),
    "memory": (["import memory"],
               lambda b, s: figures_import.import_memory(b, s["memory_small"], s["memory_large"])),
    "list": (["list calendars p95", "space search p95"],
             lambda b, s: figures_list.calendars_page(b, s["list_calendars"]) + figures_list.spaces_search(
                 b, s["spaces"])),
    "connect": (figures_connect.CONNECT_FIGURES,
                lambda b, s: figures_connect.connect(b, s["connect_calendars"], s["serial_calendars"], s["tenants"],
                                                     s["calendars_per_tenant"])),
    "throttling": (figures_connect.THROTTLING_FIGURES,
                   lambda b, s: figures_connect.connect_throttled(b, s["throttled_calendars"])),
    "sync": (figures_sync.SYNC_FIGURES, figures_sync.sync),
    "writes": (figures_writes.WRITE_FIGURES, figures_writes.writes),
}


def worker_processes() -> str:
    """devhost's language worker processes: the setting when given, else one per core (at most the
    host's 10), as a Function App of CPU-bound Python work is configured in Azure."""
    return os.environ.get(WORKERS_SETTING) or str(min(os.cpu_count() or 1, 10))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full", help="workload sizes (default: full)")
    parser.add_argument("--only", action="append", choices=sorted(GROUPS), metavar="FIGURE",
                        help=f"run only this figure group ({', '.join(GROUPS)}); repeatable")
    arguments = parser.parse_args(argv)
    sizes = SIZES[arguments.size]
    chosen = arguments.only or list(GROUPS)
    # SIGTERM (a killed `make bench`) unwinds like Ctrl-C, so the stack below is stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    started = time.perf_counter()
    figures: list[Figure] = []
    print(f"Each group starts its own Azurite, m365sim and devhost (sizes: {arguments.size})...", flush=True)
    for name in chosen:
        names, run = GROUPS[name]
        group_started = time.perf_counter()
        print(f"  measuring {name}...", flush=True)
        # Each group on a fresh stack: Azurite's in-memory tables get slower per operation as they
        # fill, so a group measured after the 50,000-row import would pay for the import's rows.
        with Stack.start(in_memory=True, free_ports=True, with_sim=True,
                         extra_env={WORKERS_SETTING: worker_processes()}) as stack:
            try:
                figures += run(Bench.on(stack), sizes)
            except Exception as error:  # noqa: BLE001 - one figure's failure must not hide the others
                traceback.print_exc()
                figures += [Figure.failed(figure, "", f"{type(error).__name__}: {error}") for figure in names]
        print(f"  {name} done in {time.perf_counter() - group_started:.0f} s", flush=True)
    seconds = time.perf_counter() - started
    facts = {**machine(), "worker_processes": int(worker_processes())}
    print()
    print(render(figures, facts, arguments.size, seconds))
    path = write_json(figures, facts, arguments.size, seconds, sizes)
    print(f"written to {path}")
    return 1 if any(figure.error for figure in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
