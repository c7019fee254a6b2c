"""RabbitMQ transport under trouble: a stuck partner, and the broker closing our connection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.queue.messages import Ack, Action, Delivery, OutgoingMessage
from gateway.queue.rabbit import RabbitTransport
from gateway.queue.retry import RetryPolicy
from gateway.queue.topology import build_topology
from tests.integration.rabbit_helpers import (
    Recorder,
    close_connection_from_server,
    delete_topology,
    envelopes,
    unique_prefix,
    wait_until,
)
from tests.services import require_command

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
async def transport(amqp_url: str) -> AsyncIterator[RabbitTransport]:
    """A declared transport on a unique prefix, deleted afterwards."""
    prefix = unique_prefix()
    topology = build_topology(prefix, ["alpha", "beta"], RetryPolicy.parse("200ms", 2))
    opened = await RabbitTransport.connect(amqp_url, topology, connection_name=prefix)
    await opened.declare()
    yield opened
    await opened.close(grace=1.0)
    await delete_topology(amqp_url, opened.topology)


async def publish_until_confirmed(
    transport: RabbitTransport, messages: list[OutgoingMessage], within: float = 30.0
) -> None:
    """Publish, and publish again what was not confirmed (as the outbox relay does)."""
    pending = messages
    async with asyncio.timeout(within):
        while pending:
            report = await transport.publish_many(pending)
            pending = [m for m in pending if m.message_id in report.failed]
            if pending:
                await asyncio.sleep(0.1)


async def test_a_stuck_partner_does_not_hold_up_another(transport: RabbitTransport) -> None:
    release = asyncio.Event()
    stuck_seen: list[str] = []

    async def stuck(delivery: Delivery) -> Action:
        stuck_seen.append(delivery.message_id)
        await release.wait()  # a partner that never answers
        return Ack()

    healthy = Recorder()
    await transport.consume(["alpha"], stuck, prefetch=2)
    await transport.consume(["beta"], healthy, prefetch=2)
    await transport.publish_many(envelopes("alpha", 10) + envelopes("beta", 200))
    await wait_until(lambda: len(healthy.ids()) == 200)
    assert len(stuck_seen) == 2  # alpha holds only its own prefetch window
    release.set()
    await wait_until(lambda: len(stuck_seen) == 10)


async def test_consuming_continues_after_the_broker_closes_the_connection(
    transport: RabbitTransport,
) -> None:
    recorder = Recorder()
    await transport.consume(["alpha", "beta"], recorder, prefetch=20)
    before = envelopes("alpha", 50, "before") + envelopes("beta", 50, "before")
    await publish_until_confirmed(transport, before)
    await wait_until(lambda: len(recorder.ids()) == 100)

    name = transport.topology.prefix  # the connection name the fixture gave
    require_command("rabbitmqctl")
    assert close_connection_from_server(name), "rabbitmqctl could not close the connection"
    await wait_until(lambda: transport.reconnects >= 1, within=30)

    after = envelopes("alpha", 50, "after") + envelopes("beta", 50, "after")
    await publish_until_confirmed(transport, after)
    expected = {m.message_id for m in before + after}
    await wait_until(lambda: recorder.ids() == expected, within=30)
