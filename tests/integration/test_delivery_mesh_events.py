"""MESH events recorded on a real store: transport receipts, failure reports, signed receipts.

The events are the ones `adapters.mesh_inbox.MeshInboxPoller` produces (tested against the real
mesh-sandbox in test_mesh.py); here they are handed to the delivery engine's handler directly.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.application.channel import Envelope
from gateway.application.inbound import (
    DeliveryFailed,
    Dispatched,
    ReceiptArrived,
    TransportAcknowledged,
)
from gateway.delivery.mesh_events import MeshEvents
from gateway.delivery.worker import DeliveryWorker
from gateway.jose import b64url_digest
from gateway.protection import Protection
from gateway.store.disclosure_model import Status
from gateway.store.tables import audit_log
from tests.integration.delivery_support import Rig, utc_now


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    built = await Rig.open(tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'gh.db'}")
    await built.add_partner("nhs-trust")
    yield built
    await built.close()


def events_of(rig: Rig) -> MeshEvents:
    return MeshEvents(store=rig.store, policy=rig.policy, intake=rig.intake, clock=utc_now)


async def dispatched_over_mesh(rig: Rig, mesh_id: str) -> str:
    """A disclosure MESH accepted (as the MESH channel reports it)."""
    [id_] = await rig.submit("nhs-trust")
    worker = DeliveryWorker(
        store=rig.store, policy=rig.policy, intake=rig.intake, channels={},
        metrics=rig.metrics, clock=utc_now, default_retry=rig.settings.retry_policy,
        protection=Protection.from_dir(rig.settings.keys_dir),
    )  # fmt: skip
    body = rig.sealed[id_]
    envelope = Envelope(id_, "nhs-trust", body, b64url_digest(body))
    await worker.dispatched(envelope, "mesh", {"mesh_message_id": mesh_id, "chunks": 1})
    return id_


async def test_transport_acknowledgement_is_recorded_once_and_status_stays(rig: Rig) -> None:
    handler = events_of(rig)
    id_ = await dispatched_over_mesh(rig, "MESH-0001")
    assert await handler.pending() == [Dispatched("MESH-0001", id_, None)]

    await handler(TransportAcknowledged("MESH-0001", id_))
    await handler(TransportAcknowledged("MESH-0001", id_))  # tracked again: nothing new

    assert await rig.status(id_) is Status.DISPATCHED
    timeline = await rig.timeline(id_)
    assert [e.type for e in timeline] == ["accepted", "dispatched", "transport_acknowledged"]
    assert timeline[-1].detail == {"mesh_message_id": "MESH-0001", "via": "mesh"}
    assert await handler.pending() == []


async def test_failure_report_fails_the_disclosure_found_by_mesh_id(rig: Rig) -> None:
    handler = events_of(rig)
    id_ = await dispatched_over_mesh(rig, "MESH-0002")
    # A REPORT may carry no local id: the MESH message id finds the disclosure.
    await handler(DeliveryFailed("MESH-0002", None, "mesh_undelivered", status_code="14"))
    assert await rig.status(id_) is Status.FAILED
    assert (await rig.timeline(id_))[-1].detail == {"reason": "mesh_undelivered"}


async def test_unmatched_failure_changes_nothing(rig: Rig) -> None:
    handler = events_of(rig)
    id_ = await dispatched_over_mesh(rig, "MESH-0003")
    await handler(DeliveryFailed("MESH-UNKNOWN", None, "mesh_delivery_error"))
    assert await rig.status(id_) is Status.DISPATCHED


async def test_signed_receipt_over_mesh_upgrades_to_receipted(rig: Rig) -> None:
    handler = events_of(rig)
    id_ = await dispatched_over_mesh(rig, "MESH-0004")
    await handler(TransportAcknowledged("MESH-0004", id_))
    receipt = rig.sims["nhs-trust"].inbox.receipt(id_, rig.sealed[id_], "received", None)
    await handler(ReceiptArrived(receipt.token, "MESH-R-1", None, "X26ABC2"))
    assert await rig.status(id_) is Status.RECEIPTED
    timeline = await rig.timeline(id_)
    assert [e.type for e in timeline][-1] == "receipted"
    assert timeline[-1].detail["via"] == "mesh"


async def test_forged_receipt_over_mesh_is_refused_without_raising(rig: Rig) -> None:
    handler = events_of(rig)
    id_ = await dispatched_over_mesh(rig, "MESH-0005")
    # Signed by the partner, but over other bytes than we sent: the digest does not match.
    receipt = rig.sims["nhs-trust"].inbox.receipt(id_, b"other bytes", "received", None)
    await handler(ReceiptArrived(receipt.token, "MESH-R-2", None, "X26ABC2"))  # no exception
    assert await rig.status(id_) is Status.DISPATCHED
    async with rig.store.read() as conn:
        refusals = list(
            await conn.scalars(
                select(audit_log.c.details).where(audit_log.c.action == "receipt.refused")
            )
        )
    assert len(refusals) == 1
    assert json.loads(refusals[0])["via"] == "mesh"
