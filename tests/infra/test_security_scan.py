"""The static security scan of infra/ (checkov, from .venv-infra) passes, and every exception is justified.

Skips live in infra/.checkov.yaml (for the whole of infra/) or inline in the one
resource they concern (`// checkov:skip=ID: reason`); both need a written reason.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.infra.support import CHECKOV, INFRA, REPO, bicep_files, require_infra_venv

CHECKOV_CONFIG = INFRA / ".checkov.yaml"
SCAN_TIMEOUT_SECONDS = 900
INLINE_SKIP = re.compile(r"checkov:skip=([A-Z0-9_]+)(?::\s*(.*))?")
MINIMUM_REASON_LENGTH = 40

pytestmark = pytest.mark.slow


def run_checkov(*arguments: str) -> subprocess.CompletedProcess[str]:
    require_infra_venv()
    return subprocess.run(
        [str(CHECKOV), *arguments],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=SCAN_TIMEOUT_SECONDS,
        check=False,
    )


def test_checkov_passes_on_infra() -> None:
    completed = run_checkov("--config-file", str(CHECKOV_CONFIG.relative_to(REPO)))
    report = completed.stdout + completed.stderr
    assert completed.returncode == 0, f"checkov found problems in infra/:\n{report}"
    # The Bicep runner must really have run: a scan that found no template would pass too.
    assert re.search(r"bicep scan results:\s+Passed checks: [1-9]\d*, Failed checks: 0", report), report


def test_checkov_fails_on_an_insecure_template(tmp_path: Path) -> None:
    (tmp_path / "insecure.bicep").write_text(
        "param location string\n"
        "resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n"
        "  name: 'stinsecure'\n"
        "  location: location\n"
        "  kind: 'StorageV2'\n"
        "  sku: { name: 'Standard_GRS' }\n"
        "  properties: {\n"
        "    minimumTlsVersion: 'TLS1_0'\n"
        "  }\n"
        "}\n"
    )
    completed = run_checkov("-d", str(tmp_path), "--framework", "bicep", "--skip-download", "--compact", "--quiet")
    assert completed.returncode != 0, completed.stdout
    assert "CKV_AZURE_44" in completed.stdout, completed.stdout


def test_every_inline_skip_says_why() -> None:
    for path in bicep_files():
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = INLINE_SKIP.search(line)
            if match:
                where = f"{path.relative_to(REPO)}:{number}"
                assert line.lstrip().startswith("//"), f"{where}: a skip must be a comment of its own"
                reason = (match.group(2) or "").strip()
                assert len(reason) >= MINIMUM_REASON_LENGTH, f"{where}: skip of {match.group(1)} needs a reason"


def test_every_skip_in_the_config_says_why() -> None:
    skipped = 0
    in_skip_list = False
    for line in CHECKOV_CONFIG.read_text().splitlines():
        if re.match(r"^[a-z-]+:", line):
            in_skip_list = line.startswith("skip-check:")
            continue
        entry = re.match(r"^\s*-\s*(CKV\w+)\s*(#\s*(.*))?$", line)
        if in_skip_list and entry:
            skipped += 1
            assert len((entry.group(3) or "").strip()) >= MINIMUM_REASON_LENGTH, f"{entry.group(1)} needs a reason"
    assert skipped, "expected the config's skip-check list (or remove this test with the list)"
