"""POST /v1/receipts: verified receipts move the status; forged, mismatched, replayed ones don't."""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from gateway.receipts import make_receipt
from gateway.store.tables import audit_log, audit_pending, outbox
from tests.gateway_support import TEST_NOW, Harness, lac_submission

Client = TestClient[Any, Any]
JOSE = {"Content-Type": "application/jose"}


async def _accepted(api: Client, harness: Harness) -> tuple[str, bytes]:
    headers = {"Authorization": f"Bearer {harness.token()}"}
    resp = await api.post("/v1/disclosures", json=lac_submission(), headers=headers)
    disclosure_id = (await resp.json())["id"]
    async with harness.gateway.store.read() as conn:
        envelope = await conn.scalar(
            select(outbox.c.envelope).where(outbox.c.disclosure_id == disclosure_id)
        )
    return disclosure_id, bytes(envelope)


def _receipt(harness: Harness, partner: str, message_id: str, body: bytes, **kw: Any) -> bytes:
    return make_receipt(
        partner_id=kw.pop("issuer", partner),
        council_id="medway-council",
        message_id=message_id,
        body_received=body,
        status=kw.pop("status", "received"),
        reason=kw.pop("reason", None),
        signing_key=harness.partner_keys[partner][1],
        now=TEST_NOW,
        receipt_id=kw.pop("receipt_id", str(uuid.uuid4())),
    )


async def _refusals(harness: Harness) -> list[str]:
    async with harness.gateway.store.read() as conn:
        rows = [
            *(await conn.execute(select(audit_log.c.action, audit_log.c.details))),
            *(await conn.execute(select(audit_pending.c.action, audit_pending.c.details))),
        ]
    return [details for action, details in rows if action == "receipt.refused"]


async def _status(api: Client, harness: Harness, disclosure_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {harness.token()}"}
    resp = await api.get(f"/v1/disclosures/{disclosure_id}", headers=headers)
    body: dict[str, Any] = await resp.json()
    return body


async def test_valid_receipt_receipts_and_replay_changes_nothing(
    api: Client, harness: Harness
) -> None:
    disclosure_id, envelope = await _accepted(api, harness)
    token = _receipt(harness, "medway-ft", disclosure_id, envelope)
    resp = await api.post("/v1/receipts", data=token, headers=JOSE)
    assert resp.status == 200, await resp.text()
    first = await resp.json()
    assert first["status"] == "receipted"
    assert first["duplicate"] is False
    again = await (await api.post("/v1/receipts", data=token, headers=JOSE)).json()
    assert again["duplicate"] is True
    view = await _status(api, harness, disclosure_id)
    assert view["status"] == "receipted"
    assert view["receipt"]["id"] == first["receipt_id"]
    assert [e["type"] for e in view["events"]] == ["accepted", "receipted"]


async def test_rejected_receipt_fails_the_disclosure(api: Client, harness: Harness) -> None:
    disclosure_id, envelope = await _accepted(api, harness)
    token = _receipt(
        harness, "medway-ft", disclosure_id, envelope, status="rejected", reason="unreadable"
    )
    body = await (await api.post("/v1/receipts", data=token, headers=JOSE)).json()
    assert body["status"] == "failed"


async def test_forged_and_mismatched_receipts_are_refused_signed_ones_audited(
    api: Client, harness: Harness
) -> None:
    disclosure_id, envelope = await _accepted(api, harness)
    cases = {
        # signed by another partner's key, claiming to be the trust
        "receipt_unknown_key": _receipt(
            harness, "kent-police", disclosure_id, envelope, issuer="medway-ft"
        ),
        "receipt_digest_mismatch": _receipt(harness, "medway-ft", disclosure_id, b"other bytes"),
    }
    for code, token in cases.items():
        resp = await api.post("/v1/receipts", data=token, headers=JOSE)
        assert resp.status == 422, code
        assert (await resp.json())["code"] == code
    tampered = cases["receipt_digest_mismatch"][:-4] + b"AAAA"
    resp = await api.post("/v1/receipts", data=tampered, headers=JOSE)
    assert resp.status == 422
    assert (await _status(api, harness, disclosure_id))["status"] == "queued"
    # Only the receipt the trust's own key signed is audited; forged and tampered ones are not.
    assert [json.loads(d)["code"] for d in await _refusals(harness)] == ["receipt_digest_mismatch"]


async def test_unknown_message_and_malformed_receipts(api: Client, harness: Harness) -> None:
    _, envelope = await _accepted(api, harness)
    unknown = _receipt(harness, "medway-ft", "no-such-message", envelope)
    assert (await api.post("/v1/receipts", data=unknown, headers=JOSE)).status == 404
    assert (await api.post("/v1/receipts", data=b"not-a-jws", headers=JOSE)).status == 400


async def test_oversized_receipt_is_413(api: Client) -> None:
    resp = await api.post("/v1/receipts", data=b"a." * 40_000 + b"b", headers=JOSE)
    assert resp.status == 413
