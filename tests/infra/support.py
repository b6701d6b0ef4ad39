"""What the infra checks share: where things are, the `.venv-infra` tools, and a Bicep lexer.

Owns running the infra venv's tools (pycep through parse_bicep.py, checkov) from the
app's pytest. It must never skip when the infra venv is missing: the checks are part
of `make test`, so a missing venv is a failure with the command that fixes it.
"""

from __future__ import annotations

import json
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
INFRA_VENV = REPO / ".venv-infra"
INFRA_PYTHON = INFRA_VENV / "bin" / "python"
CHECKOV = INFRA_VENV / "bin" / "checkov"
PARSE_BICEP = Path(__file__).with_name("parse_bicep.py")
PARSE_TIMEOUT_SECONDS = 300
# The built-in Azure roles the Bicep may assign, by role definition id.
ROLE_NAMES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a": "Storage Queue Data Message Sender",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
}


def require_infra_venv() -> None:
    """Fail (never skip) when the infra tools are not installed."""
    if not INFRA_PYTHON.exists() or not CHECKOV.exists():
        pytest.fail(
            f"{INFRA_VENV.name} is missing or incomplete, so infra/ cannot be checked. "
            "Run `make infra-setup` (`make test` does it) to install requirements-infra.txt into it.",
            pytrace=False,
        )


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def parse_bicep_files(paths: list[Path]) -> dict[Path, dict[str, Any]]:
    """Parse with pycep in the infra venv: {path: {"ok": bool, "tree" | "error": ...}}."""
    require_infra_venv()
    completed = subprocess.run(
        [str(INFRA_PYTHON), str(PARSE_BICEP), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=PARSE_TIMEOUT_SECONDS,
        check=False,
    )
    if completed.returncode != 0:
        pytest.fail(f"parse_bicep.py failed:\n{completed.stderr}", pytrace=False)
    return {Path(name): result for name, result in json.loads(completed.stdout).items()}


@cache
def _parsed_infra() -> dict[Path, dict[str, Any]]:
    return parse_bicep_files(bicep_files())


def bicep_tree(path: Path) -> dict[str, Any]:
    """The pycep tree of one file under infra/; fails the test if it does not parse."""
    result = _parsed_infra()[path]
    if not result["ok"]:
        pytest.fail(f"{path.relative_to(REPO)} does not parse: {result['error']}", pytrace=False)
    return result["tree"]


def parameters(tree: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return tree.get("parameters") or {}


def decorator_types(parameter: dict[str, Any]) -> set[str]:
    return {decorator.get("type") for decorator in parameter.get("decorators") or []}


def resources_of_type(tree: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in (tree.get("resources") or {}).items()
        if resource.get("type", "").lower() == resource_type.lower()
    }


# --- a small Bicep lexer -------------------------------------------------------------
# pycep's tree does not tell an identifier from a string literal ('name' and name both
# come out as "name"), so "is this parameter used" is answered on the source: comments
# and string contents are blanked out, interpolations `${...}` are kept as code.

_DECLARATION = re.compile(r"\b(param|var|resource|module|output|type|func)\s+[A-Za-z_][A-Za-z0-9_]*")
# An object key: first on its line, or after `{` or `,`, and followed by a colon.
_OBJECT_KEY = re.compile(r"(^|[{,])(\s*)[A-Za-z_][A-Za-z0-9_]*(?=\s*:)", re.MULTILINE)
_IDENTIFIER = re.compile(r"(?<![.\w@])[A-Za-z_][A-Za-z0-9_]*(?!\w)")


def code_only(text: str) -> str:
    """The source with comments and literal string contents replaced by spaces."""
    out: list[str] = []
    i = 0

    def string_at(start: int) -> int:
        """Consume a '...' string starting at `start`; keep interpolations. Returns the index after it."""
        out.append(" ")
        j = start + 1
        while j < len(text):
            char = text[j]
            if char == "\\":
                out.append("  ")
                j += 2
            elif char == "'":
                out.append(" ")
                return j + 1
            elif text.startswith("${", j):
                out.append("  ")
                j = expression_at(j + 2)
            else:
                out.append("\n" if char == "\n" else " ")
                j += 1
        return j

    def expression_at(start: int) -> int:
        """Consume code up to the matching '}' of an interpolation."""
        depth = 0
        j = start
        while j < len(text):
            char = text[j]
            if char == "'":
                j = string_at(j)
                continue
            if char == "{":
                depth += 1
            elif char == "}":
                if depth == 0:
                    out.append(" ")
                    return j + 1
                depth -= 1
            out.append(char)
            j += 1
        return j

    while i < len(text):
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = len(text) if end == -1 else end
            out.append(" " * (end - i))
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = len(text) if end == -1 else end + 2
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif text.startswith("'''", i):
            end = text.find("'''", i + 3)
            end = len(text) if end == -1 else end + 3
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif text[i] == "'":
            i = string_at(i)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def referenced_identifiers(text: str) -> list[str]:
    """Identifiers the code refers to: not declarations, object keys, decorators or `.property` names."""
    code = _OBJECT_KEY.sub(r"\1\2", _DECLARATION.sub(" ", code_only(text)))
    return _IDENTIFIER.findall(code)
