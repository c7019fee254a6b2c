"""The OpenAPI document covers every route in the contract and resolves every reference."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from agreements.transforms import FieldRefusal
from gateway.http.openapi import ROUTES, openapi_document
from gateway.http.partner_contract import (
    DisclosureEnvelopeClaims,
    NoticeEnvelopeClaims,
    ReceiptClaims,
)
from gateway.notice_envelope import NoticeClaims
from tests.unit.test_interop import claims_for


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


def test_routes_that_need_the_database_document_503_with_retry_after() -> None:
    paths = openapi_document()["paths"]
    for path, method in (
        ("/v1/disclosures", "post"),
        ("/v1/disclosures/{id}", "get"),
        ("/v1/receipts", "post"),
    ):
        unavailable = paths[path][method]["responses"]["503"]
        assert "Retry-After" in unavailable["headers"]
        assert "application/problem+json" in unavailable["content"]


def test_webhooks_describe_the_envelope_and_receipt_partners_implement() -> None:
    document = openapi_document()
    hook = document["webhooks"]["disclosure"]["post"]
    assert "application/jose" in hook["requestBody"]["content"]
    assert "200" in hook["responses"]
    schemas = document["components"]["schemas"]
    envelope = schemas["DisclosureEnvelopeClaims"]
    assert {"iss", "aud", "jti", "iat", "agreement", "data", "retain_until"} <= set(
        envelope["required"]
    )
    assert {"onward_recipients", "contract_version"} <= set(envelope["properties"])
    assert envelope.get("additionalProperties", True) is not False  # unknown claims allowed
    assert {"message_id", "digest", "status"} <= set(schemas["ReceiptClaims"]["required"])


def test_a_sealed_envelope_and_a_receipt_fit_the_documented_claims() -> None:
    jwt = claims_for("p-ec").to_jwt()
    assert DisclosureEnvelopeClaims.model_validate(jwt).contract_version == 1
    receipt = {
        "iss": "p-ec",
        "aud": "medway-council",
        "jti": "r-1",
        "iat": 1,
        "message_id": jwt["jti"],
        "digest": "abc",
        "status": "received",
        "future": True,
    }
    assert ReceiptClaims.model_validate(receipt).status == "received"


def test_disclosure_view_lists_refused_fields_and_subject_says_modulus_11() -> None:
    schemas = openapi_document()["components"]["schemas"]
    refused = schemas["DisclosureView"]["properties"]["fields_refused"]
    assert refused["items"]["$ref"].endswith("/RefusedFieldView")
    codes = schemas["RefusedFieldView"]["properties"]["code"]["enum"]
    assert codes == [str(code) for code in FieldRefusal]
    nhs = schemas["Subject"]["properties"]["nhs_number"]
    assert "modulus 11" in json.dumps(nhs)


def test_operations_endpoints_are_not_in_the_public_contract() -> None:
    paths = openapi_document()["paths"]
    assert "/metrics" not in paths
    assert "/readyz" not in paths
    assert "/healthz" in paths


def test_webhooks_describe_the_article_19_notice_and_a_notice_fits_them() -> None:
    document = openapi_document()
    hook = document["webhooks"]["notice"]["post"]
    assert "gatehouse-notice+jwt" in hook["description"]
    assert "application/jose" in hook["requestBody"]["content"]
    assert document["webhooks"]["disclosure"]["post"]["operationId"] == (
        "partner_receives_disclosure"
    )
    schema = document["components"]["schemas"]["NoticeEnvelopeClaims"]
    assert {"iss", "aud", "jti", "iat", "notice"} <= set(schema["required"])
    notice = NoticeClaims(
        iss="medway-council",
        aud="p-ec",
        jti="n-1",
        iat=datetime(2026, 11, 25, tzinfo=UTC),
        kind="erasure",
        reason="recorded against the wrong person",
        disclosures=("d-1",),
        fields=("identity.name",),
    )
    parsed = NoticeEnvelopeClaims.model_validate(notice.to_jwt())
    assert parsed.notice.kind == "erasure"
    assert parsed.notice.corrections is None
