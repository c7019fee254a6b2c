"""The OpenAPI 3.1 document, generated from the routes table and the handlers' pydantic models."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway.http import schemas as s
from gateway.http.partner_contract import PARTNER_MODELS, webhooks


@dataclass(frozen=True)
class Route:
    """One endpoint of the contract: the handler registration and the OpenAPI entry share it."""

    method: str
    path: str
    name: str
    summary: str
    request: type[BaseModel] | None = None
    request_content_type: str = "application/json"
    responses: dict[int, tuple[str, type[BaseModel] | None, str]] = field(default_factory=dict)
    auth: bool = False
    idempotency: bool = False
    content: dict[int, str] = field(default_factory=dict)


JSON = "application/json"
PROBLEM = "application/problem+json"
_UNAUTH = (PROBLEM, s.Problem, "Missing or invalid bearer token")
_UNAVAILABLE = (
    PROBLEM,
    s.Problem,
    "The database is unavailable or the gateway is full; nothing was recorded. "
    "Send the same request (same Idempotency-Key) again after `Retry-After` seconds",
)
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 1},
    }
}
_SLOW = (PROBLEM, s.Problem, "Body not received within GATEWAY_BODY_TIMEOUT; connection closed")
_BUSY = (PROBLEM, s.Problem, "Too many requests in flight, or too many receipts; see Retry-After")

ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/disclosures",
        "submit_disclosure",
        "Submit a disclosure under an information sharing agreement",
        request=s.DisclosureSubmission,
        auth=True,
        idempotency=True,
        responses={
            202: (JSON, s.Accepted, "Accepted: queued, or held for approval"),
            400: (PROBLEM, s.Problem, "Body is not JSON"),
            401: _UNAUTH,
            403: (PROBLEM, s.Problem, "Denied by policy; `reasons` lists every reason code"),
            408: _SLOW,
            409: (PROBLEM, s.Problem, "Idempotency-Key reused with a different body"),
            413: (
                PROBLEM,
                s.Problem,
                "Body larger than the limit (`body_too_large`), or holding more JSON values "
                "than the limit (`body_too_many_values`)",
            ),
            415: (PROBLEM, s.Problem, "Body is not application/json"),
            422: (
                PROBLEM,
                s.Problem,
                "Malformed body; `errors` names each field (a record value JSON cannot carry, "
                "such as 1e400, is `value_not_json` with its path), never its value",
            ),
            503: _UNAVAILABLE,
            429: _BUSY,
        },
    ),
    Route(
        "GET",
        "/v1/disclosures/{id}",
        "get_disclosure",
        "A disclosure's status, fields and timeline (only the caller's own)",
        auth=True,
        responses={
            200: (JSON, s.DisclosureView, "The disclosure"),
            401: _UNAUTH,
            404: (PROBLEM, s.Problem, "No such disclosure for this client"),
            503: _UNAVAILABLE,
            429: _BUSY,
        },
    ),
    Route(
        "POST",
        "/v1/receipts",
        "post_receipt",
        "A partner posts a signed receipt (compact JWS)",
        request_content_type="application/jose",
        responses={
            200: (
                JSON,
                s.ReceiptAccepted,
                "Receipt verified and recorded (or a replay: the same partner's receipt id; "
                "a receipt after the envelope's exp is recorded as late)",
            ),
            400: (PROBLEM, s.Problem, "Not a compact JWS"),
            404: (PROBLEM, s.Problem, "Unknown message id"),
            408: _SLOW,
            413: (PROBLEM, s.Problem, "Body larger than the limit"),
            422: (
                PROBLEM,
                s.Problem,
                "Receipt refused; `code` says why (audited only when the partner's key signed it)",
            ),
            503: _UNAVAILABLE,
            429: _BUSY,
        },
    ),
    Route(
        "GET",
        "/.well-known/jwks.json",
        "jwks",
        "The council's public signing keys",
        responses={200: (JSON, None, "JSON Web Key Set (RFC 7517)")},
    ),
    Route(
        "GET",
        "/healthz",
        "healthz",
        "Liveness",
        responses={200: (JSON, s.Health, "The process is up")},
    ),
    Route(
        "GET",
        "/v1/openapi.json",
        "openapi",
        "This document",
        responses={200: (JSON, None, "OpenAPI 3.1 document")},
    ),
)


# The operations listener's routes (GATEWAY_OPS_PORT, loopback by default): not part of the
# public contract, so not in the OpenAPI document.
OPS_ROUTES: tuple[Route, ...] = (
    Route("GET", "/healthz", "healthz", "Liveness"),
    Route("GET", "/readyz", "readyz", "Readiness: database and broker reachable"),
    Route("GET", "/metrics", "metrics", "Prometheus metrics"),
)


def _models() -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = []
    for route in ROUTES:
        candidates = [route.request] + [model for _, model, _ in route.responses.values()]
        for model in candidates:
            if model is not None and model not in seen:
                seen.append(model)
    return seen + [model for model in PARTNER_MODELS if model not in seen]


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": route.name, "summary": route.summary, "responses": {}}
    if route.auth:
        # A bearer token, or a client certificate registered to the client (GATEWAY_TLS_CLIENT_CA).
        op["security"] = [{"bearer": []}, {"mutualTLS": []}]
    parameters = []
    if "{id}" in route.path:
        parameters.append(
            {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
        )
    if route.idempotency:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 200},
            }
        )
    if parameters:
        op["parameters"] = parameters
    if route.request is not None:
        schema = {"$ref": f"#/components/schemas/{route.request.__name__}"}
        op["requestBody"] = {
            "required": True,
            "content": {route.request_content_type: {"schema": schema}},
        }
    elif route.request_content_type == "application/jose":
        op["requestBody"] = {
            "required": True,
            "content": {"application/jose": {"schema": {"type": "string"}}},
        }
    for status, (ctype, model, description) in sorted(route.responses.items()):
        response: dict[str, Any] = {"description": description}
        if model is not None:
            ref = {"$ref": f"#/components/schemas/{model.__name__}"}
            response["content"] = {ctype: {"schema": ref}}
        elif ctype == JSON:
            response["content"] = {ctype: {"schema": {"type": "object"}}}
        else:
            response["content"] = {ctype: {"schema": {"type": "string"}}}
        if status == 503 and ctype == PROBLEM:
            response["headers"] = _RETRY_AFTER
        op["responses"][str(status)] = response
    return op


def openapi_document(server_url: str | None = None) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document for the routes table."""
    _, schema = models_json_schema(
        [(model, "validation") for model in _models()],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "Gatehouse", "version": "1.0.0"},
        "paths": paths,
        "webhooks": webhooks(),
        "components": {
            "schemas": schema.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "mutualTLS": {"type": "mutualTLS"},
            },
        },
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document
