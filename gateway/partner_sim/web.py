"""The partner simulator's HTTP face: where envelopes arrive, the ledger, health and controls.

POST /  and  POST /in    an envelope (application/jose): 200 receipt | 202 | 503 | 504
GET  /ledger             what arrived (ids, digests, counts, field names), fault counters
GET  /keys               the partner's public encryption and signing JWKs
GET  /healthz            liveness
POST /control            change fault rates (and the receipt mode) at runtime
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.http.problems import problem, validation_errors
from gateway.partner_sim.config import ReceiptMode
from gateway.partner_sim.council_jwks import CouncilJwksError
from gateway.partner_sim.faults import Fault, FaultConfigError
from gateway.partner_sim.inbox import message_id_hint

if TYPE_CHECKING:
    from gateway.partner_sim.simulator import PartnerSimulator

JOSE = "application/jose"
SIMULATOR: web.AppKey[PartnerSimulator] = web.AppKey("partner_simulator")


class ControlRequest(BaseModel):
    """Body of POST /control: only the settings to change."""

    model_config = ConfigDict(extra="forbid", strict=True)

    fail_rate: float | None = Field(None, ge=0, le=1)
    timeout_rate: float | None = Field(None, ge=0, le=1)
    reject_rate: float | None = Field(None, ge=0, le=1)
    no_receipt_rate: float | None = Field(None, ge=0, le=1)
    slow_rate: float | None = Field(None, ge=0, le=1)
    slow_ms: int | None = Field(None, ge=0, le=600_000)
    receipts: ReceiptMode | None = None


def create_app(simulator: PartnerSimulator) -> web.Application:
    """The aiohttp application of one simulated partner."""
    app = web.Application(client_max_size=simulator.config.max_body_bytes)
    app[SIMULATOR] = simulator
    app.router.add_post("/", receive_envelope)
    app.router.add_post("/in", receive_envelope)
    app.router.add_get("/ledger", get_ledger)
    app.router.add_get("/keys", get_keys)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/control", control)
    return app


async def receive_envelope(request: web.Request) -> web.Response:
    """Take in one envelope and answer as the configured partner (faults included)."""
    sim = request.app[SIMULATOR]
    with sim.answering():
        return await _answer(sim, request)


async def _answer(sim: PartnerSimulator, request: web.Request) -> web.Response:
    if request.content_type != JOSE:
        return problem(415, "unsupported_media_type", "Send the envelope as application/jose")
    body = await request.read()  # exact bytes: the receipt digest is over what arrived
    if not body:
        return problem(400, "envelope_invalid", "The body is empty")
    decision = sim.faults.next()
    if decision.fault is Fault.FAIL:
        await sim.wait(decision.delay_s)
        return problem(503, "simulated_unavailable", "The partner is down (simulated)")
    try:
        taken = await sim.take_in(
            body, message_id_hint(request.headers.get("X-Gatehouse-Message-Id")), decision.fault
        )
    except CouncilJwksError as exc:
        return problem(503, exc.code, "The council's keys cannot be fetched now")
    if taken is None:
        return problem(
            400, "envelope_invalid", "The envelope cannot be opened and names no message id"
        )
    if decision.fault is Fault.TIMEOUT:
        taken.entry.answers["timeout"] += 1
        await sim.wait(sim.config.timeout_hold_s)
        return problem(504, "simulated_timeout", "The partner took too long (simulated)")
    await sim.wait(decision.delay_s)
    if taken.receipt is not None:
        taken.entry.answers["receipt"] += 1
        return web.Response(status=200, body=taken.receipt.token, content_type=JOSE)
    taken.entry.answers["accepted"] += 1
    return web.json_response(
        {"message_id": taken.entry.message_id, "status": "accepted"}, status=202
    )


async def get_ledger(request: web.Request) -> web.Response:
    """Everything the partner received: ids, digests, counts, field names; never values."""
    return web.json_response(request.app[SIMULATOR].report())


async def get_keys(request: web.Request) -> web.Response:
    """The public JWKs to register with the council for this partner."""
    enc, sig = request.app[SIMULATOR].public_keys()
    return web.json_response(
        {"partner_id": request.app[SIMULATOR].config.partner_id, "enc": enc, "sig": sig}
    )


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response(
        {"status": "ok", "partner_id": request.app[SIMULATOR].config.partner_id}
    )


async def control(request: web.Request) -> web.Response:
    """Change faults at runtime: {"fail_rate": 1.0} takes the partner down, 0 brings it back."""
    sim = request.app[SIMULATOR]
    try:
        changes = ControlRequest.model_validate_json(await request.read())
    except ValidationError as exc:
        return problem(
            422,
            "control_invalid",
            "Body must be a JSON object of settings",
            errors=validation_errors(exc),
        )
    rates = changes.model_dump(exclude_none=True, exclude={"receipts"})
    try:
        sim.faults.rates.replace(**rates)  # validate everything before changing anything
        if changes.receipts is not None:
            sim.set_receipts(changes.receipts)
        current = sim.set_faults(**rates)
    except FaultConfigError as exc:
        return problem(422, exc.code, "Fault settings refused", detail=exc.message)
    except ValueError as exc:
        return problem(422, "control_invalid", "Receipt mode refused", detail=str(exc))
    return web.json_response({"faults": current.to_dict(), "receipts": sim.receipts.value})
