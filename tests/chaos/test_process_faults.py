"""kill -9 of API and worker processes, with the broker connections cut meanwhile."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.chaos.rig import chaos_rig, check, load, until_accepted

pytestmark = [pytest.mark.slow, pytest.mark.chaos, pytest.mark.timeout(300)]


async def test_kill_9_an_api_and_a_worker_mid_load(
    tmp_path: Path, postgres_url: str, amqp_url: str
) -> None:
    async with chaos_rig(tmp_path, postgres_url, amqp_url) as rig:
        loader = asyncio.create_task(load(rig, 150))
        await until_accepted(rig, 40)
        await asyncio.gather(rig.restart(rig.apis[0]), rig.restart(rig.workers[0]))
        rig.broker.cut()  # the survivors lose the broker too, for a moment
        await asyncio.sleep(1.0)
        rig.broker.restore()
        await loader
        row = await check(rig, "kill -9 api + worker, broker cut")
    assert row["accepted"] == 150
