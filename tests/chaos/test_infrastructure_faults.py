"""The broker and the database go away (cut) or hang (stall) under load, one at a time."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.chaos.partner import Mode
from tests.chaos.rig import chaos_rig, check, load, until_accepted

pytestmark = [
    pytest.mark.slow, pytest.mark.chaos, pytest.mark.chaos_full, pytest.mark.timeout(300),
]  # fmt: skip


async def test_the_broker_cut_for_five_seconds(
    tmp_path: Path, postgres_url: str, amqp_url: str
) -> None:
    async with chaos_rig(tmp_path, postgres_url, amqp_url) as rig:
        loader = asyncio.create_task(load(rig, 200, concurrency=4, pause=0.02))
        await until_accepted(rig, 30)
        rig.broker.cut()
        await asyncio.sleep(5)
        rig.broker.restore()
        await loader
        row = await check(rig, "broker cut 5 s")
    assert row["receipted"] == 200


async def test_the_broker_stalled_for_five_seconds(
    tmp_path: Path, postgres_url: str, amqp_url: str
) -> None:
    async with chaos_rig(tmp_path, postgres_url, amqp_url) as rig:
        loader = asyncio.create_task(load(rig, 200, concurrency=4, pause=0.02))
        await until_accepted(rig, 30)
        rig.broker.stall()
        await asyncio.sleep(5)
        rig.broker.restore()
        await loader
        row = await check(rig, "broker stalled 5 s")
    assert row["receipted"] == 200


async def test_the_database_cut_then_stalled(
    tmp_path: Path, postgres_url: str, amqp_url: str
) -> None:
    async with chaos_rig(tmp_path, postgres_url, amqp_url) as rig:
        loader = asyncio.create_task(load(rig, 200, concurrency=4, pause=0.02))
        await until_accepted(rig, 30)
        rig.db.cut()  # callers get 503 and ask again under the same key
        await asyncio.sleep(4)
        rig.db.restore()
        await until_accepted(rig, 100)
        rig.db.stall()
        await asyncio.sleep(4)
        rig.db.restore()
        await loader
        row = await check(rig, "database cut 4 s, then stalled 4 s")
    assert rig.tally.statuses[503] > 0  # the outage was met, and answered as one
    assert row["receipted"] == 200


async def test_everything_at_once_with_kill_9(
    tmp_path: Path, postgres_url: str, amqp_url: str
) -> None:
    async with chaos_rig(tmp_path, postgres_url, amqp_url) as rig:
        loader = asyncio.create_task(load(rig, 300, concurrency=6, pause=0.02))
        await until_accepted(rig, 40)
        rig.partner.mode = Mode.UNAVAILABLE
        rig.broker.cut()
        rig.workers[1].kill()  # kill -9 while the broker is away ...
        await asyncio.sleep(2)
        rig.broker.restore()
        # ... and started again once it is back: one started while the broker is away exits
        # (its supervisor would start it again; the rig does that here).
        await rig.restart(rig.workers[1])
        rig.partner.mode = Mode.STALE
        rig.db.stall()
        await asyncio.sleep(2)
        rig.db.restore()
        await rig.restart(rig.apis[1])
        rig.partner.mode = Mode.TIMEOUT
        await asyncio.sleep(2)
        rig.partner.mode = Mode.OK
        await loader
        row = await check(rig, "all at once, kill -9 of each role")
    assert row["accepted"] == 300
