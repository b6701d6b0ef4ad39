"""HTTP route templates of Azure Functions (ASP.NET Core syntax) and the route table.

Owns compiling `calendars/{id}`, `files/{*path}`, `items/{id?}` and `{id:int}` style
templates, matching a request path, and choosing between overlapping routes the way
ASP.NET routing does: literal segments beat parameters, constrained parameters beat
plain ones, optional ones and catch-alls come last. It never calls a function.
https://learn.microsoft.com/azure/azure-functions/functions-bindings-http-webhook-trigger#customize-the-http-endpoint
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar
from urllib.parse import unquote

T = TypeVar("T")

CONSTRAINTS: dict[str, str] = {
    "int": r"-?\d+",
    "long": r"-?\d+",
    "bool": r"(?:true|false)",
    "alpha": r"[A-Za-z]+",
    "guid": r"[0-9A-Fa-f]{8}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{4}-?[0-9A-Fa-f]{12}",
    "decimal": r"-?\d+(?:\.\d+)?",
    "double": r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?",
    "float": r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?",
}

_PARAMETER = re.compile(r"\{(?P<star>\*{1,2})?(?P<name>[A-Za-z_][\w-]*)(?::(?P<constraint>[a-z]+))?(?P<optional>\?)?\}")

# Precedence ranks of one segment, lower wins (ASP.NET Core's route precedence, simplified).
LITERAL, COMPLEX, CONSTRAINED, PARAMETER, OPTIONAL, CATCH_ALL = range(6)


class RouteError(ValueError):
    """A route template devhost cannot compile."""


@dataclass(frozen=True)
class RouteTemplate:
    template: str
    pattern: re.Pattern[str]
    group_names: dict[str, str]
    precedence: tuple[int, ...]

    @classmethod
    def compile(cls, template: str) -> RouteTemplate:
        text = template.strip().strip("/")
        segments = text.split("/") if text else []
        regex = ""
        groups: dict[str, str] = {}
        precedence: list[int] = []
        for index, segment in enumerate(segments):
            last = index == len(segments) - 1
            whole = _PARAMETER.fullmatch(segment)
            if not segment:
                raise RouteError(f"route {template!r} has an empty segment")
            if whole and whole["star"]:
                if not last:
                    raise RouteError(f"route {template!r}: a catch-all parameter must be the last segment")
                group = _group(groups, whole["name"])
                regex += f"(?:/(?P<{group}>.*))?"
                precedence.append(CATCH_ALL)
            elif whole and whole["optional"]:
                if not last:
                    raise RouteError(f"route {template!r}: an optional parameter must be the last segment")
                group = _group(groups, whole["name"])
                regex += f"(?:/(?P<{group}>{_constraint(template, whole['constraint'])}))?"
                precedence.append(OPTIONAL)
            elif whole:
                group = _group(groups, whole["name"])
                regex += f"/(?P<{group}>{_constraint(template, whole['constraint'])})"
                precedence.append(CONSTRAINED if whole["constraint"] else PARAMETER)
            else:
                regex += "/" + _complex_segment(template, segment, groups)
                precedence.append(COMPLEX if "{" in segment else LITERAL)
        return cls(template, re.compile(regex + "/?", re.IGNORECASE), groups, tuple(precedence))

    def match(self, path: str) -> dict[str, str] | None:
        """Route values for `path` (the part after the route prefix, starting with '/' or empty)."""
        found = self.pattern.fullmatch(path.rstrip("/") if path != "/" else "")
        if found is None:
            return None
        return {
            name: unquote(value)
            for group, name in self.group_names.items()
            if (value := found.group(group)) is not None and value != ""
        }

    @property
    def sort_key(self) -> tuple[tuple[int, ...], int]:
        # Segment by segment, the more specific route first; then the longer one.
        return (self.precedence, -len(self.precedence))


def _group(groups: dict[str, str], name: str) -> str:
    if name.lower() in {existing.lower() for existing in groups.values()}:
        raise RouteError(f"route parameter {name!r} appears twice")
    group = f"p{len(groups)}"
    groups[group] = name
    return group


def _constraint(template: str, constraint: str | None) -> str:
    if constraint is None:
        return "[^/]+"
    if constraint not in CONSTRAINTS:
        raise RouteError(f"route {template!r}: devhost does not know the constraint {constraint!r}")
    return CONSTRAINTS[constraint]


def _complex_segment(template: str, segment: str, groups: dict[str, str]) -> str:
    """A segment mixing literal text and parameters, e.g. `{name}.{ext}` or `v{version:int}`."""
    regex = ""
    position = 0
    for found in _PARAMETER.finditer(segment):
        if found["star"] or found["optional"]:
            raise RouteError(f"route {template!r}: optional and catch-all parameters must be a whole segment")
        regex += re.escape(segment[position : found.start()])
        # Greedy, so `{name}.{ext}` splits `a.b.csv` at the last dot as ASP.NET does.
        regex += f"(?P<{_group(groups, found['name'])}>{_constraint(template, found['constraint'])})"
        position = found.end()
    rest = segment[position:]
    if "{" in rest or "}" in rest:
        raise RouteError(f"route {template!r}: cannot read segment {segment!r}")
    return regex + re.escape(rest)


@dataclass
class RouteTable(Generic[T]):
    """Routes with their allowed methods (an empty set allows every method)."""

    entries: list[tuple[RouteTemplate, frozenset[str], T]] = field(default_factory=list)

    def add(self, template: str, methods: Iterable[str], target: T) -> None:
        self.entries.append((RouteTemplate.compile(template), frozenset(m.upper() for m in methods), target))
        self.entries.sort(key=lambda entry: entry[0].sort_key)

    def resolve(self, method: str, path: str) -> tuple[T, dict[str, str]] | set[str] | None:
        """The target and route values; or the methods the path allows (405); or None (404)."""
        allowed: set[str] = set()
        for template, methods, target in self.entries:
            values = template.match(path)
            if values is None:
                continue
            if not methods or method.upper() in methods:
                return target, values
            allowed |= methods
        return allowed or None
