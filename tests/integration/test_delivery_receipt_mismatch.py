"""A synchronous receipt must be for the envelope just sent: a partner (here a proxy in front of
one) answering with an earlier message's receipt makes the attempt fail with `receipt_mismatch`,
retried, audited and visible, on both queues."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from gateway.store import partners_repo
from gateway.store.disclosure_model import Status
from gateway.store.tables import audit_log
from tests.integration.delivery_support import Rig, utc_now
from tests.integration.test_delivery import MODES, close_rig, open_rig, types

JOSE = "application/jose"


class StaleReceipts:
    """Forwards envelopes to the partner; answers every `every`-th with the first receipt seen."""

    def __init__(self, upstream: str, every: int) -> None:
        self.upstream, self.every = upstream, every
        self.replies = 0
        self.first: tuple[str, bytes] | None = None  # (message id, receipt)
        self.replayed: list[str] = []  # message ids answered with the stale receipt
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> str:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_post("/in", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}/in"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        message_id = request.headers["X-Gatehouse-Message-Id"]
        headers = {"Content-Type": JOSE, "X-Gatehouse-Message-Id": message_id}
        async with self._session.post(
            self.upstream, data=await request.read(), headers=headers
        ) as answer:
            body = await answer.read()
            status = answer.status
        if status != 200:
            return web.Response(status=status, body=body)
        self.replies += 1
        if self.first is None:
            self.first = (message_id, body)
        elif self.first[0] != message_id and self.replies % self.every == 0:
            self.replayed.append(message_id)
            return web.Response(status=200, body=self.first[1], content_type=JOSE)
        return web.Response(status=200, body=body, content_type=JOSE)


@pytest.fixture(params=MODES)
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    built = await open_rig(request.param, tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'gh.db'}")
    yield built
    await close_rig(built)


async def test_an_earlier_receipt_is_a_mismatch_retried_until_the_right_one_comes(
    rig: Rig,
) -> None:
    sim = await rig.add_partner("stale")
    proxy = StaleReceipts(f"{sim.base_url}/in", every=3)
    try:
        endpoint = {"endpoint": await proxy.start()}
        partner = partners_repo.StoredPartner(
            "stale", "Stale", "care_provider", "webhook", endpoint
        )
        at = utc_now()
        await rig.store.write(lambda conn: partners_repo.save_partner(conn, partner, at=at))
        await rig.policy.refresh()
        await rig.start()
        ids = await rig.submit("stale", 9)
        await rig.wait_for(ids, Status.RECEIPTED)
    finally:
        await proxy.close()
    assert proxy.first is not None
    assert proxy.replayed  # the fault happened, so the checks below mean something
    mismatched = set(proxy.replayed)
    for id_ in ids:
        timeline = await rig.timeline(id_)
        reasons = [e.detail["reason"] for e in timeline if e.type == "delivery_retry"]
        assert reasons == ["receipt_mismatch"] * proxy.replayed.count(id_)
        assert types(timeline)[-1] == "receipted"
        assert timeline[-1].detail["via"] == "webhook"
        entry = sim.ledger.get(id_)
        assert entry is not None
        assert entry.count == 1 + proxy.replayed.count(id_)
    first_id = proxy.first[0]
    assert types(await rig.timeline(first_id)) == ["accepted", "receipted"]
    async with rig.store.read() as conn:
        rows = list(
            await conn.execute(
                select(audit_log.c.targets, audit_log.c.details).where(
                    audit_log.c.action == "receipt.refused"
                )
            )
        )
    refused = [(json.loads(t)["disclosure"], json.loads(d)["code"]) for t, d in rows]
    assert sorted(refused) == sorted((i, "receipt_mismatch") for i in proxy.replayed)
    assert mismatched <= set(ids)
