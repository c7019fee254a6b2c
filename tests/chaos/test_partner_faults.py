"""A partner that answers 503, times out, is slow, keeps its receipt, replays an old one or
sends bytes that are no receipt: each envelope still ends receipted or visibly failed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.chaos.partner import Mode
from tests.chaos.rig import PARTNER, admin, chaos_rig, check, load, statuses_of, until_accepted

RESEND_LIMIT = 3  # DeliveryOptions.resend_limit

pytestmark = [pytest.mark.slow, pytest.mark.chaos, pytest.mark.timeout(300)]

ROTATION = (
    Mode.UNAVAILABLE, Mode.TIMEOUT, Mode.STALE, Mode.POISON, Mode.NO_RECEIPT, Mode.SLOW, Mode.OK,
)  # fmt: skip


async def test_every_kind_of_partner_misbehaviour_in_turn(
    tmp_path: Path, postgres_url: str, amqp_url: str
) -> None:
    async with chaos_rig(tmp_path, postgres_url, amqp_url) as rig:
        # A steady stream over all the turns: about 12 a second for 10 seconds.
        loader = asyncio.create_task(load(rig, 120, concurrency=2, pause=0.15))
        await until_accepted(rig, 10)
        for mode in ROTATION:
            rig.partner.mode = mode
            await asyncio.sleep(1.2)
        await loader
        row = await check(rig, "partner misbehaves in turn")
    served = rig.partner.answered
    assert [m for m in ROTATION if not served[m.value]] == [], served  # every fault was met
    assert row["receipted"] == row["accepted"] == 120  # none exhausted its attempts


@pytest.mark.chaos_full
async def test_a_partner_that_only_answers_poison_fills_the_dead_letters_visibly(
    tmp_path: Path, postgres_url: str, amqp_url: str
) -> None:
    async with chaos_rig(tmp_path, postgres_url, amqp_url) as rig:
        rig.partner.mode = Mode.POISON
        await load(rig, 30)
        async with asyncio.timeout(120):
            while list((await statuses_of(rig.database_url)).values()).count("failed") < 30:  # noqa: ASYNC110
                await asyncio.sleep(0.5)
        _, listed = await admin(rig, "deadletters", "list")
        row = await check(rig, "poison replies until the resends run out")  # lifts the poison
        assert row["failed"] == 30
        code, replayed = await admin(rig, "deadletters", "replay", "--partner", PARTNER)
        assert code == 0, replayed
        row = await check(rig, "... then deadletters replay")
        assert row["receipted"] == 30
    assert {d["reason"] for d in listed["dead_letters"]} == {"receipt_overdue"}
    # A reply that is no receipt leaves the envelope delivered but unproven: chased by resends.
    assert rig.partner.answered[Mode.POISON.value] > 30 * RESEND_LIMIT
