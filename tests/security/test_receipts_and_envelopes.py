"""Receipt ids are scoped per partner; envelopes carry exp, nbf and iat, and a receipt after exp
is accepted and recorded as late; a value JSON cannot carry is refused at submission."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from alembic import command
from sqlalchemy import Connection, func, select, update

from gateway.http.app import create_app
from gateway.receipts import make_receipt
from gateway.sealing import open_envelope
from gateway.store import migrate, receipt_rows
from gateway.store.database import Store
from gateway.store.dialects import WRITE_OPTION
from gateway.store.tables import disclosure_events, disclosures, outbox, receipts
from tests.gateway_support import (
    TEST_NOW,
    Harness,
    adult_submission,
    build_harness,
    isolated_settings,
    lac_submission,
)
from tests.integration.store_support import new_disclosure, protection, record_accepted

Client = TestClient[Any, Any]
JOSE = {"Content-Type": "application/jose"}
ANNEX_B = {
    "requesting_officer": "DC 1234 Example",
    "rank": "Detective Constable",
    "authorising_officer": "DI 5678 Example",
    "offence_or_prejudice": "Burglary investigation (synthetic)",
    "why_necessary": "To trace a witness; no other source",
}


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    built = await build_harness(isolated_settings(tmp_path))
    yield built
    await built.gateway.close()


@pytest.fixture
async def api(harness: Harness, aiohttp_client: Any) -> Client:
    client: Client = await aiohttp_client(create_app(harness.gateway))
    return client


async def _queued(api: Client, harness: Harness, body: dict[str, Any]) -> tuple[str, str, bytes]:
    """(disclosure id, partner, envelope bytes) of an accepted disclosure."""
    headers = {"Authorization": f"Bearer {harness.token()}"}
    resp = await api.post("/v1/disclosures", json=body, headers=headers)
    assert resp.status == 202
    disclosure_id = (await resp.json())["id"]
    async with harness.gateway.store.read() as conn:
        row = (
            await conn.execute(
                select(outbox.c.partner_id, outbox.c.envelope).where(
                    outbox.c.disclosure_id == disclosure_id
                )
            )
        ).one()
    return disclosure_id, row.partner_id, bytes(row.envelope)


def _receipt(harness: Harness, partner: str, message_id: str, body: bytes, jti: str) -> bytes:
    return make_receipt(
        partner_id=partner,
        council_id="medway-council",
        message_id=message_id,
        body_received=body,
        status="received",
        signing_key=harness.partner_keys[partner][1],
        now=TEST_NOW,
        receipt_id=jti,
    )


async def test_a_receipt_id_is_scoped_to_its_partner(api: Client, harness: Harness) -> None:
    first = await _queued(api, harness, lac_submission())
    second = await _queued(api, harness, adult_submission())
    assert first[1] != second[1]
    answers = []
    for disclosure_id, partner, envelope in (first, second, first):
        token = _receipt(harness, partner, disclosure_id, envelope, "r-shared")
        resp = await api.post("/v1/receipts", data=token, headers=JOSE)
        assert resp.status == 200
        answers.append((await resp.json())["duplicate"])
    assert answers == [False, False, True]  # only the first partner's own replay is one
    async with harness.gateway.store.read() as conn:
        stored = sorted((r.partner_id, r.receipt_id) for r in await conn.execute(select(receipts)))
    assert stored == sorted([(first[1], "r-shared"), (second[1], "r-shared")])


async def test_the_envelope_carries_exp_nbf_and_iat(api: Client, harness: Harness) -> None:
    _, partner, envelope = await _queued(api, harness, lac_submission())
    claims = open_envelope(
        envelope,
        decryption_key=harness.partner_keys[partner][0],
        council_jwks=harness.gateway.jwks(),
        expected_audience=partner,
        now=TEST_NOW,
    )
    assert claims["iat"] == claims["nbf"] == int(TEST_NOW.timestamp())
    assert claims["exp"] - claims["iat"] == int(timedelta(days=30).total_seconds())


async def test_a_receipt_after_exp_is_accepted_and_recorded_late(
    api: Client, harness: Harness
) -> None:
    disclosure_id, partner, envelope = await _queued(api, harness, lac_submission())
    async with harness.gateway.store.read() as conn:
        expires = await conn.scalar(
            select(disclosures.c.expires_at).where(disclosures.c.id == disclosure_id)
        )
    assert expires == TEST_NOW + timedelta(days=30)

    async def expire(conn: Any) -> None:  # the gateway's clock stands still: move exp instead
        values = {"expires_at": TEST_NOW - timedelta(seconds=1)}
        await conn.execute(
            update(disclosures).where(disclosures.c.id == disclosure_id).values(**values)
        )

    await harness.gateway.store.write(expire)
    token = _receipt(harness, partner, disclosure_id, envelope, "r-late")
    resp = await api.post("/v1/receipts", data=token, headers=JOSE)
    assert resp.status == 200
    assert (await resp.json())["status"] == "receipted"
    async with harness.gateway.store.read() as conn:
        late = await conn.scalar(select(receipts.c.late))
        details = [
            e.detail
            for e in await conn.execute(
                select(disclosure_events).where(disclosure_events.c.type == "receipted")
            )
        ]
    assert late is True
    assert details[0]["late"] == "envelope_expired"


@pytest.mark.parametrize(
    "body",
    [
        lac_submission(),
        # held for approval: refused before it is held, so the approval never seals a null
        adult_submission(
            agreement="KM-POL-S2-011", purpose="law_enforcement_request", annex_b=ANNEX_B
        ),
    ],
)
async def test_a_number_json_cannot_carry_is_refused_naming_the_field(
    api: Client, harness: Harness, body: dict[str, Any]
) -> None:
    raw = json.dumps(body)[:-1] + ', "record": {"health": {"weight_kg": 1e400}}}'
    headers = {"Authorization": f"Bearer {harness.token()}", "Content-Type": "application/json"}
    resp = await api.post("/v1/disclosures", data=raw.encode(), headers=headers)
    assert resp.status == 422
    problem = await resp.text()
    assert "record.health.weight_kg" in problem
    assert "1e400" not in problem
    async with harness.gateway.store.read() as conn:
        assert await conn.scalar(select(func.count()).select_from(disclosures)) == 0


async def test_receipts_survive_the_migration_down_and_up(
    database_url: str, tmp_path: Path
) -> None:
    """Down to 0002 (ids global again) and back: old rows get their partner from the disclosure."""
    store = await Store.open(database_url)
    try:
        await store.upgrade()
        new = new_disclosure(protection(tmp_path), partner="kent-police")
        await record_accepted(store, new)
        receipt = receipt_rows.StoredReceipt(
            "r-old", new.id, "received", None, "eyJ.x.y", TEST_NOW, "k", "kent-police"
        )
        await store.write(lambda conn: receipt_rows.record(conn, receipt))
        await _downgrade(store, "0002")
        await store.upgrade()
        async with store.read() as conn:
            row = (await conn.execute(select(receipts))).one()
    finally:
        await store.close()
    assert (row.partner_id, row.receipt_id, row.late) == ("kent-police", "r-old", False)


async def _downgrade(store: Store, revision: str) -> None:
    def work(connection: Connection) -> None:
        config = migrate.alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    async with store.engine.connect() as conn:
        await conn.execution_options(**{WRITE_OPTION: True})
        async with conn.begin():
            await conn.run_sync(work)
