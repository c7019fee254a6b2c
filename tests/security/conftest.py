"""Fixtures of the security suite: the real gateway on loopback, with the example catalog."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.http.app import create_app
from tests.gateway_support import Harness, build_harness, isolated_settings


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
