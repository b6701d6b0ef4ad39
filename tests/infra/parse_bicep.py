"""Parse Bicep files with pycep (the parser checkov uses) and print the trees as JSON.

Run by tests/infra with the `.venv-infra` interpreter, never imported by the tests:
pycep lives in that venv only. There is no Bicep CLI on this machine (it is a
downloaded binary), so pycep is what says a template parses. It must never change a file.
Lark caches the compiled grammar in the temp directory, so only the first run is slow.

Usage: python parse_bicep.py FILE...  ->  {"FILE": {"ok": true, "tree": {...}} | {"ok": false, "error": "..."}}
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pycep import BicepParser


def main(paths: list[str]) -> int:
    parser = BicepParser()
    results: dict[str, dict[str, object]] = {}
    for path in paths:
        try:
            tree = parser.parse(file_path=Path(path))
        except Exception as error:  # noqa: BLE001 - any parser failure is a result to report
            results[path] = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        else:
            results[path] = {"ok": True, "tree": tree}
    json.dump(results, sys.stdout, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
