"""Fixtures of the security suite: the real gateway on loopback, with the example catalog."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.http.app import create_app
from tests.gateway_support import Harness, build_harness, isolated_settings
from tests.security.support import Tsa, tsa_files


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    """A gateway on a fresh SQLite database with the example catalog applied."""
    built = await build_harness(isolated_settings(tmp_path, max_body_bytes=256 * 1024))
    yield built
    await built.gateway.close()


@pytest.fixture
async def api(harness: Harness, aiohttp_client: Any) -> TestClient[Any, Any]:
    """An HTTP client against the gateway's real app, served on loopback."""
    client: TestClient[Any, Any] = await aiohttp_client(create_app(harness.gateway))
    return client


@pytest.fixture
async def tsa(tmp_path: Path, aiohttp_server: Any) -> Tsa:
    """A real RFC 3161 time-stamp authority: OpenSSL's `ts -reply`, one process per request."""
    folder = tmp_path / "tsa"
    config = tsa_files(folder)
    requests = iter(range(1_000_000))

    async def reply(request: web.Request) -> web.Response:
        n = next(requests)
        query, answer = folder / f"{n}.tsq", folder / f"{n}.tsr"
        query.write_bytes(await request.read())
        arguments = ["-config", str(config), "-queryfile", str(query), "-out", str(answer)]
        process = await asyncio.create_subprocess_exec(
            "openssl", "ts", "-reply", *arguments, stderr=asyncio.subprocess.DEVNULL
        )
        assert await process.wait() == 0
        return web.Response(body=answer.read_bytes(), content_type="application/timestamp-reply")

    app = web.Application()
    app.router.add_post("/tsa", reply)
    server = await aiohttp_server(app)
    return Tsa(str(server.make_url("/tsa")), (folder / "ca.crt").read_bytes(), folder / "ca.crt")
