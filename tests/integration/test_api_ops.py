"""Operations and edge endpoints: health, readiness, metrics, JWKS, OpenAPI, size limit, opt-out."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.http.app import create_app, create_ops_app
from gateway.store import optouts
from tests.gateway_support import (
    Harness,
    adult_submission,
    build_harness,
    isolated_settings,
    lac_submission,
)

Client = TestClient[Any, Any]


async def test_health_readiness_jwks_openapi(api: Client, ops: Client, harness: Harness) -> None:
    assert (await (await api.get("/healthz")).json())["status"] == "ok"
    assert (await (await ops.get("/healthz")).json())["status"] == "ok"
    ready = await ops.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"] == {"database": "ok"}
    jwks = await (await api.get("/.well-known/jwks.json")).json()
    assert jwks["keys"]
    assert all("d" not in key for key in jwks["keys"])
    document = await (await api.get("/v1/openapi.json")).json()
    assert "/v1/disclosures" in document["paths"]


async def test_metrics_count_requests_and_outcomes(
    api: Client, ops: Client, harness: Harness
) -> None:
    headers = {"Authorization": f"Bearer {harness.token()}"}
    await api.post("/v1/disclosures", json=lac_submission(), headers=headers)
    await api.post("/v1/disclosures", json=lac_submission(purpose="research"), headers=headers)
    text = await (await ops.get("/metrics")).text()
    assert 'gatehouse_disclosures_total{outcome="queued",reason=""} 1.0' in text
    assert 'reason="purpose_not_permitted"' in text
    assert "gatehouse_outbox_depth 1.0" in text
    assert 'gatehouse_pipeline_stage_seconds_count{stage="seal"} 1.0' in text
    assert 'endpoint="/v1/disclosures",method="POST",status="202"' in text


async def test_oversized_body_is_refused_before_it_is_read(api: Client, harness: Harness) -> None:
    """A 413 arrives though the client never sends the body it announced."""
    reader, writer = await asyncio.open_connection(api.host, api.port)
    writer.write(
        b"POST /v1/disclosures HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {harness.token()}\r\n".encode()
        + b"Content-Length: 10000000000\r\n\r\n{"
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout=5)
    writer.close()
    assert b" 413 " in status_line


async def test_chunked_body_over_the_limit_is_413(api: Client, harness: Harness) -> None:
    async def chunks() -> Any:
        for _ in range(64):
            yield b" " * 8192

    headers = {"Authorization": f"Bearer {harness.token()}", "Content-Type": "application/json"}
    resp = await api.post("/v1/disclosures", data=chunks(), headers=headers)
    assert resp.status == 413


async def test_national_data_opt_out_denies(api: Client, harness: Harness) -> None:
    opted_out = "9990000026"
    index = harness.gateway.protection.blind_index("nhs_number", opted_out)
    at = harness.gateway.clock()
    await harness.gateway.store.write(
        lambda conn: optouts.replace_list(conn, [index], version="2026-11", at=at)
    )
    headers = {"Authorization": f"Bearer {harness.token()}"}
    body = adult_submission(agreement="KM-ICB-COM-004", purpose="commissioning")
    resp = await api.post("/v1/disclosures", json=body, headers=headers)
    assert resp.status == 403
    assert (await resp.json())["reasons"] == ["national_data_opt_out"]
    other = adult_submission(
        agreement="KM-ICB-COM-004", purpose="commissioning", subject={"nhs_number": "9990000034"}
    )
    assert (await api.post("/v1/disclosures", json=other, headers=headers)).status == 202


async def test_partner_without_key_is_denied(tmp_path: Path, aiohttp_client: Any) -> None:
    harness = await build_harness(
        isolated_settings(tmp_path), without_keys=frozenset({"medway-ft"})
    )
    try:
        client = await aiohttp_client(create_app(harness.gateway))
        headers = {"Authorization": f"Bearer {harness.token()}"}
        resp = await client.post("/v1/disclosures", json=lac_submission(), headers=headers)
        assert resp.status == 403
        assert json.loads(await resp.text())["reasons"] == ["partner_key_missing"]
    finally:
        await harness.gateway.close()


async def test_readiness_checks_the_broker_from_an_api_only_process(
    tmp_path: Path, aiohttp_client: Any, amqp_url: str
) -> None:
    for url, expected in ((amqp_url, 200), ("amqp://guest:guest@127.0.0.1:1/", 503)):
        harness = await build_harness(isolated_settings(tmp_path / str(expected), broker_url=url))
        try:
            client = await aiohttp_client(create_ops_app(harness.gateway))
            resp = await client.get("/readyz")
            assert resp.status == expected
            assert (await resp.json())["checks"]["broker"] == (
                "ok" if expected == 200 else "unreachable"
            )
        finally:
            await harness.gateway.close()


async def test_bytes_in_flight_past_the_limit_get_503_with_retry_after(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    """A body still arriving holds its share; the next large one is refused, then admitted."""
    settings = isolated_settings(tmp_path, max_body_bytes=200_000, max_inflight_bytes=300_000)
    harness = await build_harness(settings)
    try:
        api: Client = await aiohttp_client(create_app(harness.gateway))
        body = json.dumps(adult_submission()).encode()
        padded = body + b" " * (160_000 - len(body))  # two of these pass the 300 KB budget
        headers = {"Authorization": f"Bearer {harness.token()}", "Content-Type": "application/json"}
        reader, writer = await asyncio.open_connection(api.host, api.port)
        writer.write(
            b"POST /v1/disclosures HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {harness.token()}\r\n".encode()
            + f"Content-Length: {len(padded)}\r\n\r\n".encode()
            + padded[:1000]  # the rest is still on its way
        )
        await writer.drain()
        busy = None
        for _ in range(20):  # until the slow request has been admitted
            busy = await api.post("/v1/disclosures", data=padded, headers=headers)
            if busy.status == 503:
                break
            await asyncio.sleep(0.05)
        assert busy is not None
        assert busy.status == 503
        assert busy.content_type == "application/problem+json"
        assert int(busy.headers["Retry-After"]) > 0
        assert (await busy.json())["code"] == "gateway_busy"
        writer.write(padded[1000:])
        await writer.drain()
        assert b" 202 " in await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        await writer.wait_closed()
        again = await api.post("/v1/disclosures", data=padded, headers=headers)
        assert again.status == 202
    finally:
        await harness.gateway.close()
