"""The policy cache: unchanged policy is not parsed again; changes still show at the next
refresh; an expired client token is looked up once however many requests hold it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateway.policy_cache import PolicyCache
from gateway.service import Gateway
from gateway.store import agreements_repo, clients_repo
from tests.gateway_support import Harness, isolated_settings

AGREEMENT = "KM-DOM-006"


async def test_unchanged_policy_keeps_its_parsed_snapshot(harness: Harness) -> None:
    policy = harness.gateway.policy
    before = await policy.refresh()
    after = await policy.refresh()
    assert after.agreements[AGREEMENT] is before.agreements[AGREEMENT]
    assert after.loaded_at >= before.loaded_at


async def test_a_suspension_shows_at_the_next_refresh(harness: Harness) -> None:
    policy = harness.gateway.policy
    version = (await policy.refresh()).agreements[AGREEMENT].version
    assert await harness.gateway.store.write(
        lambda conn: agreements_repo.set_status(conn, AGREEMENT, version, "suspended")
    )
    assert str((await policy.refresh()).agreements[AGREEMENT].status) == "suspended"


async def test_an_expired_token_is_looked_up_once_for_all_waiting_requests(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [0.0]
    policy = PolicyCache(harness.gateway.store, interval=2.0, monotonic=lambda: now[0])
    lookups = 0
    real = clients_repo.by_token_hash

    async def counted(conn: Any, token_hash: str) -> Any:
        nonlocal lookups
        lookups += 1
        return await real(conn, token_hash)

    monkeypatch.setattr(clients_repo, "by_token_hash", counted)
    token = harness.token()
    first = await asyncio.gather(*(policy.client(token) for _ in range(20)))
    assert lookups == 1
    assert {client.name for client in first if client is not None} == {"case-system"}
    await asyncio.gather(*(policy.client(token) for _ in range(20)))
    assert lookups == 1  # remembered
    now[0] = 2.5  # expired: looked up again, once
    again = await asyncio.gather(*(policy.client(token) for _ in range(20)))
    assert lookups == 2
    assert all(client == first[0] for client in again)
    assert await policy.client("not-a-token") is None


async def test_the_refresh_interval_is_the_setting(tmp_path: Path) -> None:
    gateway = await Gateway.open(isolated_settings(tmp_path, policy_refresh_seconds=7.5))
    try:
        assert gateway.policy.interval == 7.5
    finally:
        await gateway.close()
