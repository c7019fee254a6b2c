"""The simulator's cache of the council JWKS: refetch on demand, limited, shared, explained."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from gateway.partner_sim.council_jwks import CouncilJwks, CouncilJwksError


class Council:
    """A JWKS provider whose key set the test changes, counting how often it is asked."""

    def __init__(self) -> None:
        self.version = 1
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> Mapping[str, Any]:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        return {"keys": [{"kid": f"k{self.version}"}]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_the_set_is_fetched_once_and_cached() -> None:
    council = Council()
    jwks = CouncilJwks(council)
    first = await jwks.current()
    assert await jwks.current() is first
    assert (council.calls, jwks.fetches) == (1, 1)


async def test_refetches_are_limited_per_window_and_the_window_slides() -> None:
    council, clock = Council(), Clock()
    jwks = CouncilJwks(council, max_refetches=2, window_s=60.0, monotonic=clock)
    seen = await jwks.current()
    council.version = 2
    newer = await jwks.refetch(seen)
    assert newer is not None
    assert newer["keys"][0]["kid"] == "k2"
    assert await jwks.refetch(newer) is not None
    assert await jwks.refetch(await jwks.current()) is None  # third in the window: refused
    clock.now += 61
    assert await jwks.refetch(await jwks.current()) is not None
    assert council.calls == 4


async def test_concurrent_refetches_share_one_fetch() -> None:
    council = Council()
    jwks = CouncilJwks(council)
    seen = await jwks.current()
    council.gate = asyncio.Event()
    council.version = 2
    waiting = [asyncio.create_task(jwks.refetch(seen)) for _ in range(5)]
    for _ in range(1000):  # poll until the first refetch is in flight (the others queue behind it)
        if council.calls == 2:
            break
        await asyncio.sleep(0)
    council.gate.set()
    results = await asyncio.gather(*waiting)
    assert council.calls == 2
    assert all(r is results[0] for r in results)


async def test_a_failing_provider_is_a_coded_error_without_its_text() -> None:
    async def broken() -> Mapping[str, Any]:
        raise RuntimeError("password=hunter2")

    with pytest.raises(CouncilJwksError) as caught:
        await CouncilJwks(broken).current()
    assert caught.value.code == "council_jwks_unavailable"
    assert "hunter2" not in caught.value.message
    assert "RuntimeError" in caught.value.message


@pytest.mark.parametrize("document", [[], {"keys": "k1"}, {"kty": "EC"}])
async def test_a_document_that_is_not_a_key_set_is_refused(document: Any) -> None:
    async def odd() -> Any:
        return document

    with pytest.raises(CouncilJwksError, match="not a key set"):
        await CouncilJwks(odd).current()
