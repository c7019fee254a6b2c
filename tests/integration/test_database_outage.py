"""The database goes away (cut, stalled, locked): 503 + Retry-After, one log line, no duplicate."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from structlog.testing import capture_logs

from gateway.http.app import create_app, create_ops_app
from gateway.service import READINESS_CACHE_SECONDS
from gateway.store.tables import disclosures
from tests.gateway_support import Harness, adult_submission, build_harness, isolated_settings
from tests.tcp_proxy import TcpProxy

Client = TestClient[Any, Any]
DB_TIMEOUT = 1.0


@pytest.fixture
async def proxy(postgres_url: str) -> AsyncIterator[TcpProxy]:
    """A proxy in front of the real PostgreSQL."""
    url = make_url(postgres_url)
    started = await TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    yield started
    await started.close()


@pytest.fixture
async def pg_harness(tmp_path: Path, postgres_url: str, proxy: TcpProxy) -> AsyncIterator[Harness]:
    """A gateway whose every database connection goes through the proxy."""
    through = make_url(postgres_url).set(port=proxy.port).render_as_string(hide_password=False)
    built = await build_harness(isolated_settings(tmp_path, through, db_timeout=DB_TIMEOUT))
    yield built
    proxy.restore()
    await built.gateway.close()


@pytest.fixture
async def pg_api(pg_harness: Harness, aiohttp_client: Any) -> Client:
    client: Client = await aiohttp_client(create_app(pg_harness.gateway))
    return client


@pytest.fixture
async def pg_ops(pg_harness: Harness, aiohttp_client: Any) -> Client:
    client: Client = await aiohttp_client(create_ops_app(pg_harness.gateway))
    return client


def _headers(harness: Harness, key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {harness.token()}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


async def _assert_503(response: Any) -> None:
    assert response.status == 503
    assert response.content_type == "application/problem+json"
    assert int(response.headers["Retry-After"]) > 0
    assert (await response.json())["code"] == "database_unavailable"


async def _count(harness: Harness) -> int:
    async with harness.gateway.store.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(disclosures))).scalar())


async def test_cut_database_answers_503_and_logs_once_per_outage(
    pg_api: Client, pg_ops: Client, pg_harness: Harness, proxy: TcpProxy
) -> None:
    assert (
        await pg_api.post("/v1/disclosures", json=adult_submission(), headers=_headers(pg_harness))
    ).status == 202
    with capture_logs() as logs:
        proxy.cut()
        answers = await asyncio.gather(
            *(
                pg_api.post(
                    "/v1/disclosures", json=adult_submission(), headers=_headers(pg_harness)
                )
                for _ in range(10)
            )
        )
        for response in answers:
            await _assert_503(response)
        ready = await pg_ops.get("/readyz")
        assert ready.status == 503
        assert (await ready.json())["checks"]["database"] == "unreachable"
        proxy.restore()
        after = await pg_api.post(
            "/v1/disclosures", json=adult_submission(), headers=_headers(pg_harness)
        )
        assert after.status == 202
    events = [entry["event"] for entry in logs]
    assert events.count("database_unavailable") == 1, events
    assert events.count("database_available") == 1, events
    assert "request_failed" not in events  # no traceback per request
    assert len([e for e in events if e == "request"]) >= 10  # the log was captured


async def test_stalled_database_answers_503_and_readyz_in_bounded_time(
    pg_api: Client, pg_ops: Client, pg_harness: Harness, proxy: TcpProxy
) -> None:
    assert (await pg_ops.get("/readyz")).status == 200
    await asyncio.sleep(READINESS_CACHE_SECONDS)  # past the remembered answer
    proxy.stall()
    started = time.monotonic()
    ready = await pg_ops.get("/readyz")
    assert ready.status == 503
    assert time.monotonic() - started < 3.0
    started = time.monotonic()
    response = await pg_api.post(
        "/v1/disclosures", json=adult_submission(), headers=_headers(pg_harness)
    )
    await _assert_503(response)
    assert time.monotonic() - started < 4 * DB_TIMEOUT + 1
    proxy.restore()
    deadline = time.monotonic() + 10
    while (await pg_ops.get("/readyz")).status != 200:
        assert time.monotonic() < deadline, "the gateway did not recover after the stall"
        await asyncio.sleep(0.2)
    ok = await pg_api.post("/v1/disclosures", json=adult_submission(), headers=_headers(pg_harness))
    assert ok.status == 202


async def test_commit_whose_answer_is_lost_is_not_accepted_twice(
    pg_api: Client, pg_harness: Harness, proxy: TcpProxy
) -> None:
    """The COMMIT reaches PostgreSQL, its answer never comes back: the retry finds the first."""
    before = await _count(pg_harness)
    proxy.cut_after(b"COMMIT;\x00")  # the simple query; not "READ COMMITTED" in a BEGIN
    first = await pg_api.post(
        "/v1/disclosures", json=adult_submission(), headers=_headers(pg_harness, "key-lost-ack")
    )
    await _assert_503(first)
    proxy.restore()
    deadline = time.monotonic() + 5
    while await _count(pg_harness) != before + 1:  # committed, though the client heard 503
        assert time.monotonic() < deadline, "the COMMIT never reached the database"
        await asyncio.sleep(0.05)
    again = await pg_api.post(
        "/v1/disclosures", json=adult_submission(), headers=_headers(pg_harness, "key-lost-ack")
    )
    assert again.status == 202
    assert await _count(pg_harness) == before + 1  # the retry found the first: no second one


async def test_sqlite_locked_by_another_process_answers_503(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    harness = await build_harness(isolated_settings(tmp_path, db_timeout=0.3))
    try:
        api: Client = await aiohttp_client(create_app(harness.gateway))
        database = make_url(harness.gateway.store.url).database
        assert database is not None
        other = sqlite3.connect(database, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")  # as a backup tool or a stuck process would
        try:
            with capture_logs() as logs:
                for _ in range(3):
                    response = await api.post(
                        "/v1/disclosures", json=adult_submission(), headers=_headers(harness)
                    )
                    await _assert_503(response)
        finally:
            other.execute("ROLLBACK")
            other.close()
        events = [entry["event"] for entry in logs]
        assert events.count("database_unavailable") == 1, events
        assert "request_failed" not in events
        ok = await api.post("/v1/disclosures", json=adult_submission(), headers=_headers(harness))
        assert ok.status == 202
    finally:
        await harness.gateway.close()
