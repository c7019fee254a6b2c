"""A disclosure to an NHS trust over MESH, end to end, against NHS England's own software.

Gatehouse (pipeline + delivery service + MESH channel and poller) sends to mailbox X26ABC2 on
mesh-sandbox; NHS England's mesh-client plays the trust: it downloads the message, opens the
envelope with the trust's key, verifies the council's signature, acknowledges (the transport
receipt), then sends a signed Gatehouse receipt back on the receipt workflow.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.mesh import MeshChannel
from adapters.mesh_inbox import MeshInboxPoller
from agreements.model import DEFAULT_NOTICE_WORKFLOW_ID
from gateway.application.commands import Queued
from gateway.application.recipient_notices import NoticeKind, NoticeRequest
from gateway.audit import Actor, ActorKind
from gateway.clients import Client
from gateway.delivery.engine import DeliveryOptions, DeliveryService, InboundPollers
from gateway.http.schemas import DisclosureSubmission
from gateway.notice_envelope import open_notice
from gateway.receipts import make_receipt
from gateway.sealing import open_envelope
from gateway.store import disclosures
from tests.gateway_support import (
    TEST_NOW,
    Harness,
    build_harness,
    isolated_settings,
    lac_submission,
)
from tests.mesh_sandbox import (
    RECEIPT_WORKFLOW,
    SENDER,
    gateway_config,
    partner_client,
    receive_all,
    running_sandbox,
)

pytestmark = pytest.mark.mesh


@pytest.fixture(params=[False, True], ids=["http", "mutual-tls"])
async def journey(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Harness, Any, DeliveryService]]:
    with running_sandbox(tmp_path / "mesh", tls=request.param) as sandbox:
        harness = await build_harness(isolated_settings(tmp_path))
        channel = MeshChannel(gateway_config(sandbox))
        service = DeliveryService(
            settings=harness.gateway.settings, store=harness.gateway.store,
            policy=harness.gateway.policy, intake=harness.gateway.receipts,
            metrics=harness.gateway.metrics, channels={"mesh": channel},
            clock=harness.gateway.clock,
            options=DeliveryOptions(poll_interval=0.05, mesh_poll_interval=0.2),
            inbound=InboundPollers(mesh=MeshInboxPoller(channel.client)),
        )  # fmt: skip
        await service.start()
        try:
            yield harness, sandbox, service
        finally:
            await service.stop(5)
            await channel.close()
            await harness.gateway.close()


async def _status(harness: Harness, disclosure_id: str) -> tuple[str, list[str]]:
    async with harness.gateway.store.read() as conn:
        found = await disclosures.get(conn, disclosure_id)
        events = await disclosures.timeline(conn, disclosure_id)
    assert found is not None
    return found.status.value, [event.type for event in events]


async def _until(harness: Harness, disclosure_id: str, check: Any, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check(*await _status(harness, disclosure_id)):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not reached: {await _status(harness, disclosure_id)}")


async def _dispatched(harness: Harness) -> str:
    """Submit a LAC health disclosure and wait until MESH has accepted it."""
    client = Client("case-system", frozenset({"KM-NHS-LAC-001"}))
    result = await harness.gateway.submit(
        client, DisclosureSubmission.model_validate(lac_submission()).to_command()
    )
    assert isinstance(result, Queued)
    disclosure_id = result.id
    await _until(harness, disclosure_id, lambda status, _events: status == "dispatched")
    return disclosure_id


async def test_disclosure_over_mesh_is_acknowledged_then_receipted(
    journey: tuple[Harness, Any, DeliveryService],
) -> None:
    harness, sandbox, _service = journey
    disclosure_id = await _dispatched(harness)

    trust = partner_client(sandbox)
    try:
        await _trust_journey(harness, trust, disclosure_id)
    finally:
        trust.close()


async def _trust_journey(harness: Harness, trust: Any, disclosure_id: str) -> None:
    [(message, body)] = await asyncio.to_thread(receive_all, trust)  # download + acknowledge
    assert message.local_id == disclosure_id
    enc_key, sig_key = harness.partner_keys["medway-ft"]
    claims = open_envelope(
        body, decryption_key=enc_key, council_jwks=harness.gateway.jwks(),
        expected_audience="medway-ft", now=TEST_NOW,
    )  # fmt: skip
    assert claims["jti"] == disclosure_id
    assert claims["agreement"]["id"] == "KM-NHS-LAC-001"
    await _until(harness, disclosure_id, lambda s, ev: "transport_acknowledged" in ev)
    assert (await _status(harness, disclosure_id))[0] == "dispatched"

    receipt = make_receipt(
        partner_id="medway-ft", council_id="medway-council", message_id=disclosure_id,
        body_received=body, status="received", signing_key=sig_key, now=TEST_NOW,
        receipt_id=str(uuid.uuid4()),
    )  # fmt: skip
    await asyncio.to_thread(trust.send_message, SENDER, receipt, workflow_id=RECEIPT_WORKFLOW)
    await _until(harness, disclosure_id, lambda status, _events: status == "receipted")


async def test_undelivered_report_from_mesh_fails_the_disclosure(
    journey: tuple[Harness, Any, DeliveryService],
) -> None:
    harness, sandbox, _service = journey
    disclosure_id = await _dispatched(harness)
    async with harness.gateway.store.read() as conn:
        events = await disclosures.timeline(conn, disclosure_id)
    mesh_id = next(e.detail["mesh_message_id"] for e in events if e.type == "dispatched")
    await sandbox.inject_report(
        mailbox=SENDER, linked_message_id=mesh_id, workflow_id="GATEHOUSE_LAC_HEALTH",
        local_id=disclosure_id,
    )  # fmt: skip
    await _until(harness, disclosure_id, lambda status, _events: status == "failed")
    async with harness.gateway.store.read() as conn:
        events = await disclosures.timeline(conn, disclosure_id)
    failure = events[-1]
    assert failure.detail.get("reason") == "mesh_undelivered", failure


async def test_article_19_notice_goes_over_mesh_on_the_notice_workflow(
    journey: tuple[Harness, Any, DeliveryService],
) -> None:
    """A rectification notice reaches the trust that received the data, on the partner's notice
    workflow, opens as a notice for that disclosure, and is receipted like a disclosure."""
    harness, sandbox, _service = journey
    disclosure_id = await _dispatched(harness)
    trust = partner_client(sandbox)
    try:
        await _trust_journey(harness, trust, disclosure_id)
        run = await harness.gateway.notices.send(NoticeRequest(
            nhs_number=lac_submission()["subject"]["nhs_number"], kind=NoticeKind.RECTIFICATION,
            reason="date of birth corrected", fields=(), corrections={},
            actor=Actor(ActorKind.ADMIN, "dpo-0001"),
        ))  # fmt: skip
        [sent] = run.notices
        assert (sent.partner, sent.status, sent.disclosure_ids) == (
            "medway-ft",
            "queued",
            (disclosure_id,),
        )
        await _until(harness, sent.notice_id, lambda status, _events: status == "dispatched")
        [(message, body)] = await asyncio.to_thread(receive_all, trust)
        assert message.workflow_id == DEFAULT_NOTICE_WORKFLOW_ID
        enc_key, sig_key = harness.partner_keys["medway-ft"]
        notice = open_notice(
            body, decryption_key=enc_key, council_jwks=harness.gateway.jwks(),
            expected_audience="medway-ft", now=TEST_NOW,
        )  # fmt: skip
        assert (notice.jti, notice.kind, notice.disclosures) == (
            sent.notice_id,
            "rectification",
            (disclosure_id,),
        )
        receipt = make_receipt(
            partner_id="medway-ft", council_id="medway-council", message_id=sent.notice_id,
            body_received=body, status="received", signing_key=sig_key, now=TEST_NOW,
            receipt_id=str(uuid.uuid4()),
        )  # fmt: skip
        await asyncio.to_thread(trust.send_message, SENDER, receipt, workflow_id=RECEIPT_WORKFLOW)
        await _until(harness, sent.notice_id, lambda status, _events: status == "receipted")
    finally:
        trust.close()
