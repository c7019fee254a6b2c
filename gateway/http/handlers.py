"""HTTP handlers: parse, authenticate, hand to the use cases, render the contract's bodies."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from gateway.application.commands import Conflict, Denied, SubmitDisclosure
from gateway.clients import Client
from gateway.errors import DatabaseUnavailableError, GatewayError, NotFoundError
from gateway.http.admission import InflightBytes
from gateway.http.limits import ListenerLimits
from gateway.http.openapi import openapi_document
from gateway.http.problems import problem, unavailable
from gateway.http.schemas import (
    NUL,
    DisclosureView,
    Health,
    ReceiptAccepted,
)
from gateway.http.submission_body import BodyRefused, read_submission
from gateway.logging import bound_context
from gateway.service import Gateway
from gateway.trusted_proxies import FORWARDED_FOR, client_address

_BEARER = "bearer "
MAX_ID_LENGTH = 64  # the disclosures table's id column
MAX_RECEIPT_BYTES = 64 * 1024  # a receipt is a few hundred bytes; anything far larger is not one
LOG_IDS = web.RequestKey("log_ids", dict[str, str])  # read by the access-log middleware
GATEWAY_KEY = web.AppKey("gateway", Gateway)
INFLIGHT_KEY = web.AppKey("inflight_bytes", InflightBytes)
LIMITS_KEY = web.AppKey("limits", ListenerLimits)


class _BodyTooLargeError(Exception):
    pass


def _busy() -> web.Response:
    return problem(
        429,
        "too_many_requests_in_flight",
        "Too many requests in flight for this client",
        headers={"Retry-After": "1"},
    )


def _body_timeout(limit: float) -> web.Response:
    response = problem(
        408, "body_timeout", "Request body not received in time", detail=f"limit {limit:g} s"
    )
    response.force_close()  # the rest of a slow body is never read: the connection goes
    return response


async def _read_body(request: web.Request, limit: int) -> bytearray:
    """The whole body, or _BodyTooLargeError past `limit` bytes; the caller sets the deadline.

    One buffer, not copied to bytes and not kept on the request (as `request.read()` does):
    a large record is held once while it is parsed, then let go.
    """
    body = bytearray()
    async for chunk in request.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise _BodyTooLargeError
    return body


def _peer_certificate(request: web.Request) -> bytes | None:
    """The client certificate the TLS handshake verified (DER), if one was presented."""
    if request.transport is None:
        return None
    tls = request.transport.get_extra_info("ssl_object")
    der = tls.getpeercert(binary_form=True) if tls is not None else None
    return der if isinstance(der, bytes) and der else None


async def _authenticate(request: web.Request) -> Client:
    """A verified client certificate registered to a client, else a valid bearer token."""
    der = _peer_certificate(request)
    if der is not None:
        client = await request.app[GATEWAY_KEY].authenticate_certificate(der)
        if client is not None:
            bound_context({"client": client.name})
            return client
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith(_BEARER):
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": "Bearer"})
    client = await request.app[GATEWAY_KEY].authenticate(header[len(_BEARER) :].strip())
    if client is None:
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": "Bearer"})
    bound_context({"client": client.name})
    return client


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(body).encode(), content_type="application/json"
    )


def _too_large(request: web.Request, limit: int | None = None) -> web.Response | None:
    limit = limit or request.app[GATEWAY_KEY].settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return problem(
            413, "body_too_large", "Request body too large", detail=f"limit {limit} bytes"
        )
    return None


async def submit_disclosure(request: web.Request) -> web.Response:
    """POST /v1/disclosures: the whole pipeline behind one call."""
    client = await _authenticate(request)
    with request.app[LIMITS_KEY].in_flight.slot(f"client:{client.name}") as free:
        return await _submit(request, client) if free else _busy()


async def _submit(request: web.Request, client: Client) -> web.Response:
    if (refusal := _too_large(request)) is not None:
        return refusal
    if request.content_type != "application/json":
        return problem(415, "unsupported_media_type", "Send application/json")
    inflight = request.app[INFLIGHT_KEY]
    # A body of unknown length may be as large as the limit: reserve that much.
    size = request.content_length or request.app[GATEWAY_KEY].settings.max_body_bytes
    if not inflight.try_take(size):
        return unavailable("gateway_busy", "Too many large requests in flight; try again")
    try:
        return await _submit_admitted(request, client)
    finally:
        inflight.give_back(size)


async def _submit_admitted(request: web.Request, client: Client) -> web.Response:
    parsed = await _parse_submission(request)
    if isinstance(parsed, web.Response):
        return parsed
    result = await request.app[GATEWAY_KEY].submit(
        client, parsed.take(), idempotency_key=parsed.key, body_digest=parsed.digest
    )
    if isinstance(result, Conflict):
        return problem(409, result.code, "Idempotency-Key reused with another body")
    request[LOG_IDS] = {"client": client.name, "disclosure_id": result.id}
    if isinstance(result, Denied):
        return problem(
            403,
            "disclosure_denied",
            "Disclosure refused by policy",
            reasons=list(result.reasons),
            extra={"id": result.id},
        )
    return _json({"id": result.id, "status": result.status}, 202)


@dataclass(slots=True)
class _Parsed:
    """A valid submission's command, its Idempotency-Key and the body's digest. `take()` hands
    the command over, so its record goes once sealed rather than when the reply is sent."""

    command: SubmitDisclosure | None
    key: str | None
    digest: str

    def take(self) -> SubmitDisclosure:
        command, self.command = self.command, None
        if command is None:
            raise RuntimeError("the submission was already taken")
        return command


async def _parse_submission(request: web.Request) -> _Parsed | web.Response:
    """The validated body as a command, its Idempotency-Key and the body's digest, or the
    refusal; the raw bytes go when this returns, the parsed record once it is sealed."""
    limits = request.app[LIMITS_KEY]
    try:
        async with asyncio.timeout(limits.body_timeout):
            raw = await _read_body(request, request.app[GATEWAY_KEY].settings.max_body_bytes)
    except TimeoutError:
        return _body_timeout(limits.body_timeout)
    except _BodyTooLargeError:
        return problem(413, "body_too_large", "Request body too large")
    key = request.headers.get("Idempotency-Key")
    # The digest matters only to an Idempotency-Key (same key, same body?).
    digest = hashlib.sha256(raw).hexdigest() if key is not None else ""
    submission = await read_submission(raw, request.app[GATEWAY_KEY].settings.max_body_values)
    del raw
    if isinstance(submission, BodyRefused):
        return problem(
            submission.status,
            submission.code,
            submission.title,
            detail=submission.detail,
            errors=submission.errors,
        )
    if key is not None and not 0 < len(key) <= 200:
        return problem(422, "idempotency_key_invalid", "Idempotency-Key must be 1-200 characters")
    return _Parsed(submission.to_command(), key, digest)


async def get_disclosure(request: web.Request) -> web.Response:
    """GET /v1/disclosures/{id}: only the calling client's own disclosures."""
    client = await _authenticate(request)
    with request.app[LIMITS_KEY].in_flight.slot(f"client:{client.name}") as free:
        return await _disclosure(request, client) if free else _busy()


async def _disclosure(request: web.Request, client: Client) -> web.Response:
    disclosure_id = request.match_info["id"]
    request[LOG_IDS] = {"client": client.name, "disclosure_id": disclosure_id[:64]}
    if NUL in disclosure_id or len(disclosure_id) > MAX_ID_LENGTH:  # no such id can exist
        return problem(404, "disclosure_not_found", "No such disclosure")
    try:
        report = await request.app[GATEWAY_KEY].disclosure_report(disclosure_id, client)
    except NotFoundError:
        return problem(404, "disclosure_not_found", "No such disclosure")
    view = DisclosureView.of(report)
    return web.Response(body=view.model_dump_json().encode(), content_type="application/json")


async def post_receipt(request: web.Request) -> web.Response:
    """POST /v1/receipts: a partner's signed receipt, verified before anything changes.

    Unauthenticated until verified: rate-limited and limited in flight per source address.
    """
    limits = request.app[LIMITS_KEY]
    address = client_address(
        request.remote,
        request.headers.getall(FORWARDED_FOR, []),
        limits.trusted_proxies,
    )
    wait = await limits.receipts.take(address)
    if wait:
        return problem(
            429,
            "rate_limited",
            "Too many receipts from this address",
            headers={"Retry-After": str(wait)},
        )
    with limits.in_flight.slot(f"address:{address}") as free:
        return await _receipt(request, limits) if free else _busy()


async def _receipt(request: web.Request, limits: ListenerLimits) -> web.Response:
    if (refusal := _too_large(request, MAX_RECEIPT_BYTES)) is not None:
        return refusal
    try:
        async with asyncio.timeout(limits.body_timeout):
            token = bytes(await _read_body(request, MAX_RECEIPT_BYTES)).strip()
    except TimeoutError:
        return _body_timeout(limits.body_timeout)
    except _BodyTooLargeError:
        return problem(413, "body_too_large", "Request body too large")
    if not token or token.count(b".") != 2:
        return problem(400, "receipt_malformed", "Body must be a compact JWS")
    try:
        recorded = await request.app[GATEWAY_KEY].receipts.accept(token)
    except NotFoundError:
        return problem(404, "receipt_unknown_message", "No disclosure with that message id")
    except DatabaseUnavailableError:
        raise  # not the receipt's fault: 503, and the partner sends it again
    except GatewayError as exc:
        return problem(422, exc.code, "Receipt refused")
    body = ReceiptAccepted(
        receipt_id=recorded.receipt_id,
        message_id=recorded.message_id,
        status=recorded.status.value,
        duplicate=recorded.duplicate,
    )
    return web.Response(body=body.model_dump_json().encode(), content_type="application/json")


async def jwks(request: web.Request) -> web.Response:
    """GET /.well-known/jwks.json: current and recent council signing keys."""
    return _json(request.app[GATEWAY_KEY].jwks())


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: the process answers."""
    return _json(Health(status="ok").model_dump())


async def readyz(request: web.Request) -> web.Response:
    """GET /readyz: the database and broker are reachable."""
    checks = await request.app[GATEWAY_KEY].readiness()
    ok = all(value == "ok" for value in checks.values())
    body = Health(status="ok" if ok else "unavailable", checks=checks)
    return _json(body.model_dump(), 200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: Prometheus text format."""
    gateway = request.app[GATEWAY_KEY]
    await gateway.refresh_gauges()
    return web.Response(body=gateway.metrics.render(), content_type="text/plain", charset="utf-8")


async def openapi(request: web.Request) -> web.Response:
    """GET /v1/openapi.json: the contract, generated from the same models as the handlers."""
    return _json(openapi_document())
