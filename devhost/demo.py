"""Demo data for `make run`: the spaces directory, so the demo tenant's rooms have
spaces to link to. Idempotent: importing the same spaces again changes nothing."""

from __future__ import annotations

from collections.abc import Mapping

from devhost.demo_spaces import demo_spaces
from shared.context import AppContext
from shared.settings import Settings


def seed(base_url: str, env: Mapping[str, str]) -> None:
    context = AppContext.build(Settings.from_environment(env))
    report = context.spaces.import_spaces(demo_spaces(), actor="demo seed")
    print(f"Demo spaces: {report.get('added', 0)} added, {report.get('unchanged', 0)} unchanged "
          f"({base_url}/api/spaces)")
