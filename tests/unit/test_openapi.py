"""The OpenAPI document covers every route in the contract and resolves every reference."""

from __future__ import annotations

import json
from typing import Any

from gateway.http.openapi import ROUTES, openapi_document


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def test_every_route_is_documented_with_its_responses() -> None:
    document = openapi_document()
    assert document["openapi"].startswith("3.1")
    for route in ROUTES:
        operation = document["paths"][route.path][route.method.lower()]
        assert set(operation["responses"]) == {str(code) for code in route.responses}


def test_every_reference_resolves() -> None:
    document = openapi_document()
    schemas = document["components"]["schemas"]
    refs = _refs(document)
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in schemas


def test_submission_schema_forbids_unknown_top_level_fields() -> None:
    schema = openapi_document()["components"]["schemas"]["DisclosureSubmission"]
    assert schema["additionalProperties"] is False
    assert {"agreement", "purpose", "subject", "record", "requested_by", "reason"} <= set(
        schema["required"]
    )
    json.dumps(schema)


def test_operations_endpoints_are_not_in_the_public_contract() -> None:
    paths = openapi_document()["paths"]
    assert "/metrics" not in paths
    assert "/readyz" not in paths
    assert "/healthz" in paths
