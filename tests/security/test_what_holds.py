"""Attacks the gateway already withstood when the suite was written, kept so a regression
fails CI: tokens, oversize and deep bodies, unknown fields, forged, alg-confused and replayed
receipts."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from gateway.partner_keys import generate_partner_keys
from gateway.receipts import make_receipt
from gateway.store.tables import outbox
from tests.gateway_support import TEST_NOW, Harness, lac_submission

Client = TestClient[Any, Any]
JOSE = {"Content-Type": "application/jose"}
PARTNER = "medway-ft"  # the partner of the looked-after-children agreement


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def _accepted(api: Client, harness: Harness) -> tuple[str, bytes]:
    headers = {"Authorization": f"Bearer {harness.token()}"}
    resp = await api.post("/v1/disclosures", json=lac_submission(), headers=headers)
    assert resp.status == 202
    disclosure_id = (await resp.json())["id"]
    async with harness.gateway.store.read() as conn:
        envelope = await conn.scalar(
            select(outbox.c.envelope).where(outbox.c.disclosure_id == disclosure_id)
        )
    return disclosure_id, bytes(envelope)


def _claims(message_id: str, envelope: bytes) -> dict[str, Any]:
    digest = _b64(hashlib.sha256(envelope).digest())
    return {
        "iss": PARTNER, "aud": "medway-council", "jti": str(uuid.uuid4()),
        "iat": int(TEST_NOW.timestamp()), "message_id": message_id, "digest": digest,
        "status": "received",
    }  # fmt: skip


def _receipt(harness: Harness, message_id: str, envelope: bytes, key: Any = None) -> bytes:
    return make_receipt(
        partner_id=PARTNER,
        council_id="medway-council",
        message_id=message_id,
        body_received=envelope,
        status="received",
        signing_key=key or harness.partner_keys[PARTNER][1],
        now=TEST_NOW,
        receipt_id=str(uuid.uuid4()),
    )


async def _status(api: Client, harness: Harness, disclosure_id: str) -> str:
    headers = {"Authorization": f"Bearer {harness.token()}"}
    resp = await api.get(f"/v1/disclosures/{disclosure_id}", headers=headers)
    return str((await resp.json())["status"])


async def test_tokens(api: Client, harness: Harness) -> None:
    body = lac_submission()
    for headers in (
        {},
        {"Authorization": "Bearer " + "A" * 43},
        {"Authorization": f"Basic {harness.token()}"},
        {"Authorization": f"Bearer {harness.token()[:-1]}"},
        {"Authorization": f"Bearer {harness.token('education')}"},  # another client
    ):
        resp = await api.post("/v1/disclosures", json=body, headers=headers)
        assert resp.status in {401, 403}, (headers, resp.status)
        if resp.status == 401:
            assert resp.headers["WWW-Authenticate"] == "Bearer"


async def test_oversize_deep_and_unknown_bodies(api: Client, harness: Harness) -> None:
    headers = {"Authorization": f"Bearer {harness.token()}", "Content-Type": "application/json"}
    big = json.dumps(lac_submission(reason="x" * 300_000))
    assert (await api.post("/v1/disclosures", data=big, headers=headers)).status == 413
    deep = '{"record": ' + "[" * 50_000 + "]" * 50_000 + "}"
    resp = await api.post("/v1/disclosures", data=deep, headers=headers)
    assert resp.status in {400, 422}, resp.status
    unknown = lac_submission(smuggled="value")
    resp = await api.post("/v1/disclosures", json=unknown, headers=headers)
    assert resp.status == 422
    errors = (await resp.json())["errors"]
    assert [(e["field"], e["code"]) for e in errors] == [("smuggled", "extra_forbidden")]
    assert "value" not in json.dumps(errors)


async def test_forged_alg_confused_and_replayed_receipts(api: Client, harness: Harness) -> None:
    disclosure_id, envelope = await _accepted(api, harness)
    real_sig = harness.partner_keys[PARTNER][1]
    _enc, impostor = generate_partner_keys("ec")
    forged = _receipt(harness, disclosure_id, envelope, {**impostor, "kid": real_sig.get("kid")})
    claims = _b64(json.dumps(_claims(disclosure_id, envelope)).encode())
    none_header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    unsigned = f"{none_header}.{claims}.".encode()
    public = {k: v for k, v in real_sig.items() if k != "d"}
    hs_header = _b64(json.dumps({"alg": "HS256", "kid": real_sig.get("kid")}).encode())
    mac = hmac.new(json.dumps(public).encode(), f"{hs_header}.{claims}".encode(), "sha256")
    confused = f"{hs_header}.{claims}.{_b64(mac.digest())}".encode()
    for attack in (forged, unsigned, confused):
        resp = await api.post("/v1/receipts", data=attack, headers=JOSE)
        assert 400 <= resp.status < 500, (attack[:40], resp.status)
        assert await _status(api, harness, disclosure_id) == "queued"
    valid = _receipt(harness, disclosure_id, envelope)
    first = await api.post("/v1/receipts", data=valid, headers=JOSE)
    assert (first.status, (await first.json())["duplicate"]) == (200, False)
    again = await api.post("/v1/receipts", data=valid, headers=JOSE)
    assert (again.status, (await again.json())["duplicate"]) == (200, True)
    assert await _status(api, harness, disclosure_id) == "receipted"
