"""9 MB records among ordinary ones, more at once than the API admits, with the broker cut."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.chaos.rig import chaos_rig, check, large_record, load, until_accepted

pytestmark = [
    pytest.mark.slow, pytest.mark.chaos, pytest.mark.chaos_full, pytest.mark.timeout(300),
]  # fmt: skip
MB = 1024 * 1024


async def test_large_records_past_the_admission_limit(
    tmp_path: Path, postgres_url: str, amqp_url: str
) -> None:
    settings = {
        "GATEWAY_MAX_INFLIGHT_BYTES": str(20 * MB),  # two 10 MB bodies at once per API process
        "GATEWAY_WEBHOOK_TOTAL_TIMEOUT": "30",  # a 16 MB envelope takes more than 2 s to open
    }
    async with chaos_rig(tmp_path, postgres_url, amqp_url, **settings) as rig:
        large = asyncio.create_task(load(rig, 12, concurrency=6, record=large_record(9 * MB)))
        small = asyncio.create_task(load(rig, 100, concurrency=4, pause=0.05))
        await until_accepted(rig, 20)
        rig.broker.cut()
        await asyncio.sleep(2)
        rig.broker.restore()
        await asyncio.gather(large, small)
        row = await check(rig, "9 MB records past the admission limit, broker cut")
    assert rig.tally.statuses[503] > 0  # some were turned away while others were in flight
    assert row["receipted"] == 112
