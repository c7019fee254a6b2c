"""The receipt rate limit per source address: per process in memory, shared by every API
process through a real Redis server, and keyed by the forwarded address only behind a proxy
listed in GATEWAY_TRUSTED_PROXIES."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.http.app import create_app
from tests.gateway_support import Harness, build_harness, isolated_settings
from tests.service_process import free_port
from tests.services import port_open, require_command

Client = TestClient[Any, Any]
JOSE = {"Content-Type": "application/jose"}
BURST = 5


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A real Redis server (Debian's redis-server) on a free port, no persistence."""
    require_command("redis-server")
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="gh-redis-"))
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while not port_open("127.0.0.1", port):
            assert server.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not listen"
            time.sleep(0.05)
        yield f"async+valkey://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


async def _harness(tmp_path: Path, **extra: Any) -> Harness:
    settings = isolated_settings(tmp_path, receipt_rate=0.1, receipt_burst=BURST, **extra)
    return await build_harness(settings)


async def _statuses(api: Client, n: int, headers: dict[str, str] | None = None) -> list[int]:
    statuses = []
    for _ in range(n):
        resp = await api.post(
            "/v1/receipts", data=b"not.a.receipt", headers={**JOSE, **(headers or {})}
        )
        statuses.append(resp.status)
    return statuses


@pytest.fixture
async def two_processes(
    request: pytest.FixtureRequest, tmp_path: Path, aiohttp_client: Any
) -> AsyncIterator[tuple[Client, Client]]:
    """Two API listeners, each with its own limits, as two processes have."""
    harness = await _harness(tmp_path, rate_limit_storage=request.param)
    first: Client = await aiohttp_client(create_app(harness.gateway))
    second: Client = await aiohttp_client(create_app(harness.gateway))
    yield first, second
    await harness.gateway.close()


@pytest.mark.parametrize("two_processes", ["async+memory://"], indirect=True)
async def test_in_memory_each_process_counts_its_own(two_processes: tuple[Client, Client]) -> None:
    first, second = two_processes
    assert await _statuses(first, BURST + 1) == [422] * BURST + [429]
    # The documented limit of the default: another process allows its own burst.
    assert await _statuses(second, BURST) == [422] * BURST


async def test_a_shared_store_makes_one_limit_for_every_process(
    redis_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    harness = await _harness(tmp_path, rate_limit_storage=redis_url)
    try:
        first: Client = await aiohttp_client(create_app(harness.gateway))
        second: Client = await aiohttp_client(create_app(harness.gateway))
        assert await _statuses(first, 3) == [422] * 3
        assert await _statuses(second, 3) == [422, 422, 429]  # 5 in all, across both
        refused = await second.post("/v1/receipts", data=b"x.y.z", headers=JOSE)
        assert (await refused.json())["code"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= BURST / 0.1
    finally:
        await harness.gateway.close()


async def test_forwarded_addresses_count_only_from_a_trusted_proxy(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    untrusted = await _harness(tmp_path / "a")
    trusted = await _harness(tmp_path / "b", trusted_proxies="127.0.0.1")
    try:
        direct: Client = await aiohttp_client(create_app(untrusted.gateway))
        proxied: Client = await aiohttp_client(create_app(trusted.gateway))
        # A client that forges the header gains nothing: its own address is what counts.
        forged = [
            (await _statuses(direct, 1, {"X-Forwarded-For": f"203.0.113.{i}"}))[0]
            for i in range(BURST + 2)
        ]
        assert forged[-2:] == [429, 429]
        # Behind the trusted proxy (loopback here) each forwarded client has its own limit.
        one = await _statuses(proxied, BURST + 1, {"X-Forwarded-For": "203.0.113.1"})
        assert one == [422] * BURST + [429]
        other = await _statuses(proxied, BURST, {"X-Forwarded-For": "203.0.113.2"})
        assert other == [422] * BURST
    finally:
        await untrusted.gateway.close()
        await trusted.gateway.close()
