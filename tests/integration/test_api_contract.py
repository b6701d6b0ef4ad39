"""A property-based run of the admin API from its OpenAPI document (schemathesis):
no input the document allows may produce a 5xx, and every response must match it."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from blueprints.openapi import document

GENERATED_ITEMS = 20


def _capped(node: Any) -> Any:
    if isinstance(node, dict):
        capped = {key: _capped(value) for key, value in node.items()}
        if capped.get("type") == "array":
            capped["maxItems"] = min(capped.get("maxItems", GENERATED_ITEMS), GENERATED_ITEMS)
        return capped
    if isinstance(node, list):
        return [_capped(value) for value in node]
    return node


def small_bodies(published: dict[str, Any]) -> dict[str, Any]:
    """The document as published, with every array of a request body capped at GENERATED_ITEMS
    items: the generated bodies (boundaries included) stay quick to answer. Responses keep theirs."""
    paths = {path: {method: ({**operation, "requestBody": _capped(operation["requestBody"])}
                             if isinstance(operation, dict) and "requestBody" in operation else operation)
                    for method, operation in item.items()}
             for path, item in published["paths"].items()}
    return {**published, "paths": paths}


schema = schemathesis.openapi.from_dict(small_bodies(document()))


@schemathesis.serializer("text/csv")
def _csv(ctx, value):  # noqa: ANN001, ANN202 - schemathesis' serializer protocol
    return value.encode("utf-8") if isinstance(value, str) else bytes(str(value), "utf-8")


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
def test_the_api_keeps_its_contract(case, admin, stack) -> None:
    case.call_and_validate(base_url=stack.base_url, session=admin, checks=CHECKS,
                           headers={"X-Requested-With": "schemathesis"})
