"""The benchmark's output: one row per figure, printed as a table and written as JSON.

Owns how a figure is represented (measured value, the baseline measured in the same run,
their ratio, the target it is read against) and how the table and the machine's facts
(core count, library versions) are rendered. It never measures anything and never judges:
the target column is printed for the reader, no code asserts it.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
LIBRARIES = ("azure-data-tables", "azure-storage-blob", "msal", "requests", "azure-functions")


@dataclass
class Figure:
    """One row of the table. `ratio` is measured / baseline unless the note says otherwise."""

    figure: str
    measured: float | None
    unit: str
    baseline: float | None
    baseline_unit: str
    ratio: float | None
    target: str
    note: str = ""
    error: str | None = None

    @classmethod
    def failed(cls, figure: str, target: str, error: str) -> Figure:
        return cls(figure, None, "", None, "", None, target, error=error)


def ratio(measured: float | None, baseline: float | None) -> float | None:
    if measured is None or baseline is None or baseline == 0 or math.isnan(measured) or math.isnan(baseline):
        return None
    return measured / baseline


def _number(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, int):
        return f"{value:,} {unit}".strip()
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"
    return f"{text} {unit}".strip()


def machine() -> dict[str, Any]:
    versions: dict[str, str] = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    pinned = json.loads((ROOT / "package.json").read_text(encoding="utf-8")).get("devDependencies", {})
    installed = ROOT / "node_modules" / "azurite" / "package.json"
    versions["azurite"] = (json.loads(installed.read_text(encoding="utf-8")).get("version")
                           if installed.is_file() else f"{pinned.get('azurite', '?')} (not installed)")
    return {"cores": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform(),
            "libraries": versions}


def render(figures: list[Figure], facts: dict[str, Any], size: str, seconds: float) -> str:
    headers = ("figure", "measured", "baseline (same run)", "ratio", "target")
    rows = []
    for figure in figures:
        if figure.error:
            rows.append((figure.figure, f"FAILED: {figure.error[:70]}", "", "", figure.target))
            continue
        rows.append((figure.figure, _number(figure.measured, figure.unit),
                     _number(figure.baseline, figure.baseline_unit) if figure.baseline_unit else "—",
                     "—" if figure.ratio is None else f"{figure.ratio:.2f}x", figure.target))
    widths = [max(len(str(row[i])) for row in (headers, *rows)) for i in range(len(headers))]
    line = "  ".join("-" * width for width in widths)
    workers = facts.get("worker_processes")
    out = [f"make bench SIZE={size}: {facts['cores']} cores, Python {facts['python']}, {facts['platform']}"
           + (f"; devhost with {workers} language worker processes" if workers else ""),
           "libraries: " + ", ".join(f"{name} {version}" for name, version in facts["libraries"].items()),
           "", "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)), line]
    out += ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    notes = [f"  {figure.figure}: {figure.note}" for figure in figures if figure.note and not figure.error]
    if notes:
        out += ["", "notes:", *notes]
    out.append(f"\n(total {seconds:.0f} s; ratios compare figures measured in this same run; nothing is asserted)")
    return "\n".join(out)


def write_json(figures: list[Figure], facts: dict[str, Any], size: str, seconds: float,
               sizes: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"bench-{size}-{stamp}.json"
    path.write_text(json.dumps({"size": size, "sizes": sizes, "finished_at": stamp, "seconds": round(seconds, 1),
                                "machine": facts, "figures": [asdict(f) for f in figures]}, indent=2) + "\n",
                    encoding="utf-8")
    return path
