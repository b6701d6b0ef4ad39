"""The OpenAPI document and the app's HTTP routes describe the same API."""

from __future__ import annotations

import functools
import json

import function_app
from blueprints.openapi import document


@functools.cache  # FunctionApp.get_functions() may be called once per app object
def _routes() -> frozenset[tuple[str, str]]:
    routes = set()
    for function in function_app.app.get_functions():
        trigger = function.get_trigger()
        if trigger is None or trigger.get_binding_name() != "httpTrigger":
            continue
        binding = trigger.get_dict_repr()
        path = "/api/" + binding["route"]
        for method in binding.get("methods") or []:
            routes.add((str(getattr(method, "value", method)).lower(), path))
    return frozenset(routes)


def _documented() -> set[tuple[str, str]]:
    return {(method, path) for path, operations in document()["paths"].items() for method in operations}


def test_every_route_is_documented() -> None:
    assert _routes() - _documented() == set()


def test_every_documented_operation_exists() -> None:
    assert _documented() - _routes() == set()


def test_the_document_is_json_and_names_its_version() -> None:
    doc = json.loads(json.dumps(document()))
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["version"]
