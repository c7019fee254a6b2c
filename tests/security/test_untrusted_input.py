"""Unauthenticated input never writes the audit log, and a client's free text on a request is
stored only normalised: known ids, `<unknown>`, dictionary paths and a count, in a bounded
entry however large the record."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from gateway.application.receipt_intake import RateLimitedLog
from gateway.audit_entry import MAX_ENTRY_BYTES
from gateway.http import submission_body
from gateway.http.app import create_app
from gateway.http.submission_body import parse_submission
from gateway.receipts import make_receipt
from gateway.store.tables import audit_log, audit_pending, disclosures, outbox
from tests.gateway_support import Harness, build_harness, isolated_settings, lac_submission

Client = TestClient[Any, Any]
JOSE = {"Content-Type": "application/jose"}
MARKER = "ZZSENDERTEXT"  # a sender's text that must never be stored


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    # The per-address receipt rate limit is its own test; here every junk receipt must arrive.
    built = await build_harness(
        isolated_settings(tmp_path, max_body_bytes=16 * 1024 * 1024, receipt_burst=10_000)
    )
    yield built
    await built.gateway.close()


@pytest.fixture
async def api(harness: Harness, aiohttp_client: Any) -> Client:
    client: Client = await aiohttp_client(create_app(harness.gateway))
    return client


def _auth(harness: Harness) -> dict[str, str]:
    return {"Authorization": f"Bearer {harness.token()}"}


async def _audit_rows(harness: Harness) -> list[tuple[str, str, str]]:
    """(action, targets, details) of every entry, chained or staged."""
    async with harness.gateway.store.read() as conn:
        return [
            (row.action, row.targets, row.details)
            for table in (audit_log, audit_pending)
            for row in await conn.execute(select(table.c.action, table.c.targets, table.c.details))
        ]


def _b64(value: dict[str, Any]) -> bytes:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")


async def test_refused_unauthenticated_receipts_write_nothing(
    api: Client, harness: Harness
) -> None:
    resp = await api.post("/v1/disclosures", json=lac_submission(), headers=_auth(harness))
    disclosure_id = (await resp.json())["id"]
    before = await _audit_rows(harness)
    stranger_sig = make_receipt(
        partner_id="medway-ft",
        council_id="medway-council",
        message_id=disclosure_id,
        body_received=b"whatever",
        status="received",
        signing_key=harness.partner_keys["kent-police"][1],  # not the trust's key
        now=harness.gateway.clock(),
        receipt_id=MARKER,
    )
    junk = [
        # unknown message ids carrying the sender's text
        _b64({"alg": "ES256", "kid": MARKER}) + b"." + _b64({"message_id": MARKER * 5}) + b".sig",
        # a real message id, but a signature no registered key makes
        _b64({"alg": "ES256", "kid": MARKER}) + b"." + _b64({"message_id": disclosure_id}) + b".x",
        stranger_sig,
    ]
    for _ in range(100):
        for token in junk:
            resp = await api.post("/v1/receipts", data=token, headers=JOSE)
            assert resp.status in (404, 422)
    assert await _audit_rows(harness) == before  # not one entry
    metrics = harness.gateway.metrics.render().decode()
    assert (
        'gatehouse_receipts_refused_unauthenticated_total{reason="receipt_unknown_message"} 100.0'
        in metrics
    )
    assert 'reason="receipt_unknown_key"} 200.0' in metrics
    assert MARKER not in metrics


async def test_a_receipt_the_partner_signed_is_audited_when_refused(
    api: Client, harness: Harness
) -> None:
    resp = await api.post("/v1/disclosures", json=lac_submission(), headers=_auth(harness))
    disclosure_id = (await resp.json())["id"]
    token = make_receipt(
        partner_id="medway-ft",
        council_id="medway-council",
        message_id=disclosure_id,
        body_received=b"not the bytes we sent",
        status="received",
        signing_key=harness.partner_keys["medway-ft"][1],
        now=harness.gateway.clock(),
        receipt_id="r-1",
    )
    assert (await api.post("/v1/receipts", data=token, headers=JOSE)).status == 422
    refused = [row for row in await _audit_rows(harness) if row[0] == "receipt.refused"]
    assert len(refused) == 1
    assert json.loads(refused[0][1]) == {"disclosure": disclosure_id, "partner": "medway-ft"}
    assert json.loads(refused[0][2])["code"] == "receipt_digest_mismatch"


def test_the_refusal_log_is_rate_limited() -> None:
    lines: list[tuple[str, dict[str, Any]]] = []

    class Sink:
        def warning(self, event: str, **fields: Any) -> None:
            lines.append((event, fields))

    limited = RateLimitedLog(Sink(), interval=60)
    for _ in range(500):
        limited.warning("receipt_refused_unauthenticated", code="receipt_unknown_key", via="api")
    assert lines == [
        (
            "receipt_refused_unauthenticated",
            {"suppressed": 0, "code": "receipt_unknown_key", "via": "api"},
        )
    ]


async def test_a_denied_request_stores_no_client_text(api: Client, harness: Harness) -> None:
    body = lac_submission(agreement=f"NO-SUCH-{MARKER}", purpose=f"p_{MARKER.lower()}")
    body["record"] = {**body["record"], f"k_{MARKER}": "x"}
    resp = await api.post("/v1/disclosures", json=body, headers=_auth(harness))
    assert resp.status == 403
    denied = [row for row in await _audit_rows(harness) if row[0] == "disclosure.denied"]
    assert len(denied) == 1
    assert MARKER not in json.dumps(denied)
    assert MARKER.lower() not in json.dumps(denied)
    assert json.loads(denied[0][1])["agreement"] == "<unknown>@0"
    assert json.loads(denied[0][2])["purpose"] == "<unknown>"
    async with harness.gateway.store.read() as conn:
        row = (await conn.execute(select(disclosures))).one()
    assert (row.agreement_id, row.purpose) == ("<unknown>", "<unknown>")


async def test_a_record_of_very_many_keys_makes_a_bounded_entry(
    api: Client, harness: Harness
) -> None:
    n = harness.gateway.settings.max_body_values - 500  # just under the limit
    body = lac_submission()
    body["record"] = {**body["record"], **{f"k{i}": i for i in range(n)}}
    raw = json.dumps(body).encode()
    headers = {**_auth(harness), "Content-Type": "application/json"}
    submitted = await api.post("/v1/disclosures", data=io.BytesIO(raw), headers=headers)
    assert submitted.status == 202
    disclosure_id = (await submitted.json())["id"]
    accepted = [row for row in await _audit_rows(harness) if row[0] == "disclosure.accepted"]
    details = json.loads(accepted[0][2])
    assert len(accepted[0][1]) + len(accepted[0][2]) < MAX_ENTRY_BYTES
    assert len(accepted[0][2]) < 4096  # dictionary paths and a count, not 19,500 names
    assert details["unknown_fields_removed"] == n
    assert details["fields_removed"][-1] == "<unknown>"
    assert not any(path.startswith("k") for path in details["fields_removed"])
    async with harness.gateway.store.read() as conn:
        assert await conn.scalar(
            select(func.count()).select_from(outbox).where(outbox.c.disclosure_id == disclosure_id)
        )
        stored = await conn.scalar(
            select(disclosures.c.fields_removed).where(disclosures.c.id == disclosure_id)
        )
    assert len(json.dumps(stored)) < 4096


async def test_a_body_of_300k_keys_is_refused_while_healthz_keeps_answering(
    api: Client, harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = lac_submission()
    body["record"] = {**body["record"], **{f"k{i}": i for i in range(300_000)}}
    raw = json.dumps(body).encode()
    assert len(raw) < harness.gateway.settings.max_body_bytes  # within the size limit
    headers = {**_auth(harness), "Content-Type": "application/json"}
    parsed_on: list[int] = []

    def parse_and_note_thread(raw: bytes | bytearray, max_values: int) -> Any:
        parsed_on.append(threading.get_ident())
        return parse_submission(raw, max_values)

    monkeypatch.setattr(submission_body, "parse_submission", parse_and_note_thread)
    big = asyncio.create_task(api.post("/v1/disclosures", data=io.BytesIO(raw), headers=headers))
    answered = 0
    while not big.done():
        assert (await api.get("/healthz")).status == 200
        answered += 1
    refused = await big
    assert refused.status == 413
    problem_body = await refused.json()
    assert problem_body["code"] == "body_too_many_values"
    assert "k1" not in json.dumps(problem_body)
    assert answered >= 2  # /healthz was asked while the big body was being handled
    # Parsed and refused off the event loop: the loop only waits for the worker thread.
    assert parsed_on
    assert threading.get_ident() not in parsed_on
    assert not [row for row in await _audit_rows(harness) if row[0].startswith("disclosure.")]
