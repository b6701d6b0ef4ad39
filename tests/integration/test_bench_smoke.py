"""`make bench SIZE=small` runs end to end and prints every figure with a number.

Runs `python -m bench --size small` as a subprocess (it starts its own Azurite, m365sim and
devhost on free ports and stops them). Checks only that each figure row is printed with a
measured number and that the JSON result is written — never a timing, never a target.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.figures_connect import CONNECT_FIGURES, THROTTLING_FIGURES
from bench.figures_sync import SYNC_FIGURES
from bench.figures_writes import WRITE_FIGURES

ROOT = Path(__file__).resolve().parents[2]
# Figure names as printed; some carry the size, e.g. "import memory 10k vs 1k rows".
FIGURE_PREFIXES = ["CSV import vs row-at-a-time", "CSV import vs raw Azurite EGT", "import memory",
                   "list calendars p95", "space search p95", *CONNECT_FIGURES, *THROTTLING_FIGURES, *SYNC_FIGURES,
                   *WRITE_FIGURES]
NUMBER = r"-?[\d,]+(?:\.\d+)?"


@pytest.mark.slow
def test_small_bench_prints_every_figure_with_a_number() -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--size", "small"], cwd=ROOT, capture_output=True,
                          text=True, timeout=900, check=False)
    output = done.stdout
    assert done.returncode == 0, f"bench failed ({done.returncode}):\n{output[-3000:]}\n{done.stderr[-3000:]}"
    rows = [line for line in output.splitlines() if not line.startswith(" ")]
    for prefix in FIGURE_PREFIXES:
        # "connect, several tenants vs one" is printed with the tenant count.
        pattern = re.escape(prefix).replace("several", r"\d+")
        row = next((line for line in rows if re.match(pattern, line)), None)
        assert row is not None, f"no row for {prefix!r} in:\n{output}"
        measured = re.split(r"\s{2,}", row.strip())[1]
        assert re.match(NUMBER + r"(\s|$)", measured), f"{prefix!r} has no measured number: {row!r}"
    assert re.search(r"\d+ cores", output) and "azure-data-tables" in output and "azurite" in output
    written = Path(re.search(r"written to (\S+\.json)", output).group(1))
    result = json.loads(written.read_text(encoding="utf-8"))
    assert result["size"] == "small" and all(f["measured"] is not None for f in result["figures"])
