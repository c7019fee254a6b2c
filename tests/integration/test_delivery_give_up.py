"""Giving up on a delivery always leaves a `failed` disclosure behind, or the engine does not
give up: a handler that raises on every reply, and a database cut while the partner answers.

On both queues; RabbitMQ and PostgreSQL for real, the database cut through a TCP proxy the test
controls.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import aio_pika
import pytest
from sqlalchemy import update
from sqlalchemy.engine import make_url

from gateway.application.receipt_intake import ReceiptIntake, ReceiptRecorded
from gateway.delivery.dead_letters import list_dead_letters
from gateway.delivery.engine import DeliveryOptions
from gateway.jose import b64url_digest
from gateway.queue.messages import OutgoingMessage
from gateway.queue.rabbit import RabbitTransport
from gateway.queue.topology import Topology, build_topology
from gateway.store.disclosure_model import Disclosure, Status
from gateway.store.receipt_ledger import ReceiptLedger
from gateway.store.tables import outbox
from gateway.store.unit_of_work import Connection
from tests.integration.delivery_support import COUNCIL, Rig, utc_now, wait_until
from tests.integration.test_delivery import MODES, close_rig, open_rig, types
from tests.services import AMQP_URL
from tests.tcp_proxy import TcpProxy


class PoisonedIntake(ReceiptIntake):
    """Every reply the partner gives makes recording it raise (a poison reply)."""

    async def accept_sync(
        self, token: bytes, *, sent: Disclosure, digest: str, via: str
    ) -> ReceiptRecorded:
        raise RuntimeError("poison reply")


async def dead_queue_ids(rig: Rig, partner: str) -> int:
    """How many messages the partner's dead-letter queue holds (0 on the embedded queue)."""
    service = rig.service
    assert service is not None
    if service.transport is None:
        return 0
    depths = {d.queue: d.messages for d in await service.transport.queue_depths()}
    return depths[service.transport.topology.dead_queue(partner)]


@pytest.fixture(params=MODES)
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    built = await open_rig(request.param, tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'gh.db'}")
    yield built
    await close_rig(built)


async def test_a_reply_that_makes_the_handler_raise_ends_failed_and_listed(rig: Rig) -> None:
    sim = await rig.add_partner("poison")
    rig.intake = PoisonedIntake(
        records=ReceiptLedger(rig.store),
        policy=rig.policy,
        org_id=COUNCIL,
        metrics=rig.metrics,
        clock=utc_now,
    )
    await rig.start()
    ids = await rig.submit("poison", 3)
    await rig.wait_for(ids, Status.FAILED)
    for id_ in ids:
        timeline = await rig.timeline(id_)
        assert types(timeline)[0] == "accepted"
        failed = timeline[-1]
        assert failed.type == "failed"
        assert failed.detail["reason"] == "delivery_attempts_exhausted"
        assert failed.detail["last_reason"] == "handler_error"
        assert failed.detail["attempts"] == 4
    listed = await list_dead_letters(rig.store, partner="poison")
    assert sorted(d.disclosure_id for d in listed) == sorted(ids)
    if rig.service is not None and rig.service.transport is not None:
        await wait_until(lambda: _depth_is(rig, "poison", 3))
    assert sim.ledger.arrivals == 12  # 4 attempts each, every one answered


async def _depth_is(rig: Rig, partner: str, count: int) -> bool:
    return await dead_queue_ids(rig, partner) == count


@pytest.mark.postgres
@pytest.mark.parametrize("mode", MODES)
async def test_a_database_cut_while_the_partner_answers_strands_nothing(
    mode: str, tmp_path: Path, postgres_url: str
) -> None:
    """The attempts run out while the database is away: the engine defers rather than
    dead-letter what it cannot record; once it is back every disclosure is receipted or
    visibly failed (listed, and parked), none left queued."""
    url = make_url(postgres_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    port = (await proxy.start()).port
    through_proxy = url.set(port=port).render_as_string(hide_password=False)
    options = DeliveryOptions(
        poll_interval=0.02, hold_recheck=timedelta(milliseconds=200), deadline_interval=0.1,
        relay_lease=timedelta(seconds=5), claim_lease=timedelta(seconds=1),
    )  # fmt: skip
    rig = await open_rig(mode, tmp_path, through_proxy, options=options, webhook_timeout=5.0)
    try:
        sim = await rig.add_partner("answers-slowly", slow_ms=1000)
        await rig.start()
        ids = await rig.submit("answers-slowly", 4)
        await wait_until(lambda: sim.ledger.arrivals >= 4)  # the partner is answering now
        proxy.cut()
        await asyncio.sleep(3.0)  # longer than every retry delay together (350 ms)
        proxy.restore()

        async def settled() -> bool:
            now = await rig.statuses(ids)
            return all(v in (Status.RECEIPTED, Status.FAILED) for v in now.values())

        # A stale pooled connection may still fail the first attempt after the cut, so the last
        # attempt can end failed; what must never happen is a disclosure left queued.
        await wait_until(settled, within=40.0)
        statuses = await rig.statuses(ids)
        failed = sorted(i for i, s in statuses.items() if s is Status.FAILED)
        listed = sorted(d.disclosure_id for d in await list_dead_letters(rig.store))
        assert listed == failed
        if rig.service is not None and rig.service.transport is not None:
            await wait_until(lambda: _depth_is(rig, "answers-slowly", len(failed)))
        for id_ in ids:
            entry = sim.ledger.get(id_)
            assert entry is not None
            assert entry.digests == [b64url_digest(rig.sealed[id_])]  # any resend: same bytes
    finally:
        await close_rig(rig)
        await proxy.close()


@pytest.mark.rabbitmq
async def test_the_brokers_last_redelivery_is_recorded_failed_not_sent(tmp_path: Path) -> None:
    """After crashes spent `x-delivery-limit`, the worker records the failure and dead-letters
    the message itself: the broker never parks one the database has not heard of."""
    rig = await open_rig("rabbitmq", tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'gh.db'}")
    try:
        rig.settings = rig.settings.model_copy(update={"delivery_limit": 2})
        sim = await rig.add_partner("crash-loop")
        [id_] = await rig.submit("crash-loop")
        await set_outbox_published(rig, id_)  # as the relay leaves it once confirmed
        topology = build_topology(
            rig.settings.broker_prefix, ["crash-loop"], rig.settings.retry_policy, delivery_limit=2
        )
        await crash_twice(topology, rig.sealed[id_], id_)
        await rig.start()
        await rig.wait_for([id_], Status.FAILED)
        failed = (await rig.timeline(id_))[-1]
        assert failed.detail["reason"] == "delivery_attempts_exhausted"
        assert failed.detail["last_reason"] == "delivery_limit"
        await wait_until(lambda: _depth_is(rig, "crash-loop", 1))
        assert len(sim.ledger) == 0
    finally:
        await close_rig(rig)


async def set_outbox_published(rig: Rig, id_: str) -> None:
    async def work(conn: Connection) -> None:
        await conn.execute(
            update(outbox)
            .where(outbox.c.disclosure_id == id_)
            .values(state="published", published_at=utc_now())
        )

    await rig.store.write(work)


async def crash_twice(topology: Topology, body: bytes, id_: str) -> None:
    """Publish the envelope and take it twice without settling it, as two crashed workers."""
    transport = await RabbitTransport.connect(AMQP_URL, topology)
    try:
        await transport.declare()
        report = await transport.publish_many([OutgoingMessage(id_, "crash-loop", body)])
        assert report.confirmed == (id_,)
    finally:
        await transport.close(0)
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(topology.delivery_queue("crash-loop"), ensure=False)
        # A consumer, not basic.get: quorum queues with a single active consumer refuse get.
        # The first delivery is nacked back; the second is returned when the connection closes.
        await channel.set_qos(prefetch_count=1)
        async with queue.iterator() as messages:
            async for got in messages:
                if got.redelivered:
                    break
                await got.nack(requeue=True)
