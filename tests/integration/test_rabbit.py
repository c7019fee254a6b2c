"""RabbitMQ transport against the real broker: declare, confirms, retry, dead letters, replay."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import aio_pika
import pytest
from aiormq.exceptions import ChannelNotFoundEntity

from gateway.queue.messages import Ack, DeadLetter, Delivery, OutgoingMessage, Retry
from gateway.queue.rabbit import LARGE_BODY, BrokerError, RabbitTransport, TopologyConflictError
from gateway.queue.retry import RetryPolicy
from gateway.queue.topology import Topology, TopologyError, build_topology
from tests.integration.rabbit_helpers import (
    Recorder,
    delete_topology,
    envelopes,
    unique_prefix,
    wait_until,
)

pytestmark = pytest.mark.rabbitmq

FAST = RetryPolicy.parse("200ms,400ms", max_attempts=3)
MakeTransport = Callable[..., Awaitable[RabbitTransport]]


@pytest.fixture
async def make_transport(amqp_url: str) -> AsyncIterator[MakeTransport]:
    """Connected, declared transports on a unique prefix; everything is deleted afterwards."""
    prefix = unique_prefix()
    opened: list[RabbitTransport] = []

    async def make(
        partners: Sequence[str] = ("alpha", "beta"), retry: RetryPolicy = FAST, **options: int
    ) -> RabbitTransport:
        topology = build_topology(prefix, partners, retry, **options)
        transport = await RabbitTransport.connect(amqp_url, topology, connection_name=prefix)
        opened.append(transport)
        await transport.declare()
        return transport

    yield make
    topologies: list[Topology] = [t.topology for t in opened]
    for transport in opened:
        await transport.close(grace=1.0)
    for topology in topologies:
        await delete_topology(amqp_url, topology)


async def depth(transport: RabbitTransport, queue: str) -> int:
    """Ready messages in one queue."""
    return {d.queue: d.messages for d in await transport.queue_depths()}[queue]


async def test_declare_is_idempotent_even_from_two_processes_at_once(
    make_transport: MakeTransport,
) -> None:
    first = await make_transport()
    second = await make_transport()
    await asyncio.gather(first.declare(), second.declare(), first.declare())
    depths = await first.queue_depths()
    assert {d.queue for d in depths} == {q.name for q in first.topology.queues()}
    assert all(d.messages == 0 for d in depths)


async def test_a_queue_with_other_arguments_is_a_clear_conflict(
    make_transport: MakeTransport,
) -> None:
    await make_transport()
    with pytest.raises(TopologyConflictError) as caught:
        await make_transport(delivery_limit=3)
    assert caught.value.code == "broker_topology_conflict"
    assert ".outbound." in caught.value.message


async def test_publish_a_thousand_with_confirms_and_consume_them_all(
    make_transport: MakeTransport,
) -> None:
    transport = await make_transport()
    batch = envelopes("alpha", 500) + envelopes("beta", 500)
    report = await transport.publish_many(batch)
    assert len(report.confirmed) == 1000
    assert report.failed == {}
    recorder = Recorder()
    await transport.consume(["alpha", "beta"], recorder, prefetch=50)
    await wait_until(lambda: len(recorder.ids()) == 1000)
    assert recorder.ids() == {m.message_id for m in batch}
    first = next(d for d in recorder.seen if d.message_id == "m-beta-7")
    assert (first.partner_id, first.body, first.attempt) == ("beta", b"jwe:m:7", 1)
    for partner in ("alpha", "beta"):
        await wait_for_depth(transport, transport.topology.delivery_queue(partner), 0)


async def test_unroutable_and_duplicate_messages_are_reported_not_confirmed(
    make_transport: MakeTransport,
) -> None:
    transport = await make_transport()
    good = OutgoingMessage("ok-1", "alpha", b"x")
    stray = OutgoingMessage("stray-1", "no-such-partner", b"x")
    report = await transport.publish_many([good, stray, good])
    assert report.confirmed == ("ok-1",)
    assert dict(report.failed) == {"stray-1": "unroutable", "ok-1": "duplicate_in_batch"}
    assert await depth(transport, transport.topology.delivery_queue("alpha")) == 1


async def test_large_messages_go_one_at_a_time_and_are_reported_like_small_ones(
    make_transport: MakeTransport,
) -> None:
    transport = await make_transport()
    # Not one byte repeated: frames sent out of order or cut wrong would not compare equal.
    large = b"jwe:" + bytes(i % 251 for i in range(LARGE_BODY))
    batch = [
        OutgoingMessage("big-1", "alpha", large),
        OutgoingMessage("small-1", "alpha", b"x"),
        OutgoingMessage("big-stray", "no-such-partner", large),
        OutgoingMessage("big-2", "beta", large + b"2"),
    ]
    report = await transport.publish_many(batch)
    assert report.confirmed == ("big-1", "small-1", "big-2")
    assert dict(report.failed) == {"big-stray": "unroutable"}
    recorder = Recorder()
    await transport.consume(["alpha", "beta"], recorder)
    await wait_until(lambda: len(recorder.ids()) == 3)
    bodies = {d.message_id: d.body for d in recorder.seen}
    assert bodies == {"big-1": large, "small-1": b"x", "big-2": large + b"2"}


async def test_retry_waits_in_the_delay_queue_and_returns_with_the_next_attempt(
    make_transport: MakeTransport,
) -> None:
    transport = await make_transport()
    arrived: list[float] = []

    def decide(delivery: Delivery) -> Retry | Ack:
        arrived.append(time.monotonic())
        return Retry("partner_server_error") if delivery.attempt == 1 else Ack()

    recorder = Recorder(decide)
    await transport.consume(["alpha"], recorder)
    await transport.publish_many([OutgoingMessage("r-1", "alpha", b"sealed")])
    await wait_until(lambda: len(recorder.seen) == 2)
    assert recorder.attempts("r-1") == [1, 2]
    back = recorder.seen[1]
    assert (back.partner_id, back.body, back.last_reason) == (
        "alpha",
        b"sealed",
        "partner_server_error",
    )
    assert arrived[1] - arrived[0] >= 0.2  # it really waited out the 200 ms tier


async def test_attempts_run_out_into_the_partners_dead_letter_queue_then_replay(
    make_transport: MakeTransport,
) -> None:
    transport = await make_transport()
    refusing = Recorder(lambda _d: Retry("partner_unreachable"))
    consumers = await transport.consume(["alpha"], refusing)
    await transport.publish_many([OutgoingMessage("d-1", "alpha", b"sealed")])
    dead = transport.topology.dead_queue("alpha")
    await wait_until(lambda: len(refusing.seen) == 3)
    await wait_for_depth(transport, dead, 1)
    assert refusing.attempts("d-1") == [1, 2, 3]
    await consumers.cancel(grace=1)

    accepting = Recorder()
    await transport.consume(["alpha"], accepting)
    report = await transport.replay_dead_letters("alpha")
    assert report.replayed == ("d-1",)
    assert report.left == 0
    await wait_until(lambda: accepting.ids() == {"d-1"})
    replayed = accepting.seen[0]
    assert (replayed.attempt, replayed.replays, replayed.body) == (1, 1, b"sealed")


async def test_dead_letter_action_and_replay_of_chosen_ids_only(
    make_transport: MakeTransport,
) -> None:
    transport = await make_transport()
    recorder = Recorder(lambda d: DeadLetter("partner_refused") if d.replays == 0 else Ack())
    await transport.consume(["beta"], recorder)
    await transport.publish_many(envelopes("beta", 3, tag="p"))
    dead = transport.topology.dead_queue("beta")
    await wait_for_depth(transport, dead, 3)
    report = await transport.replay_dead_letters("beta", {"p-beta-1"})
    assert report.replayed == ("p-beta-1",)
    assert report.left == 2
    await wait_until(lambda: any(d.replays == 1 for d in recorder.seen))
    assert [d.message_id for d in recorder.seen if d.replays == 1] == ["p-beta-1"]
    await wait_for_depth(transport, dead, 2)


async def test_a_handler_that_raises_is_retried_not_lost(make_transport: MakeTransport) -> None:
    transport = await make_transport()
    calls: list[int] = []

    async def flaky(delivery: Delivery) -> Ack:
        calls.append(delivery.attempt)
        if len(calls) == 1:
            raise RuntimeError("bug in the worker")
        return Ack()

    await transport.consume(["alpha"], flaky)
    await transport.publish_many([OutgoingMessage("h-1", "alpha", b"x")])
    await wait_until(lambda: calls == [1, 1])  # deferred: the attempt it could not record is kept


async def test_a_handler_that_always_raises_is_never_dead_lettered(
    make_transport: MakeTransport,
) -> None:
    """Only the handler may give up (having recorded it): the transport keeps the message."""
    transport = await make_transport(retry=RetryPolicy.parse("50ms", max_attempts=2))
    calls: list[int] = []

    async def broken(delivery: Delivery) -> Ack:
        calls.append(delivery.attempt)
        raise RuntimeError("bug in the worker")

    await transport.consume(["alpha"], broken)
    await transport.publish_many([OutgoingMessage("h-2", "alpha", b"x")])
    await wait_until(lambda: len(calls) >= 5)  # well past max_attempts
    assert set(calls) == {1}
    assert await depth(transport, transport.topology.dead_queue("alpha")) == 0


async def test_a_new_partner_can_be_added_at_runtime_with_its_own_policy(
    make_transport: MakeTransport,
) -> None:
    transport = await make_transport()
    await transport.add_partner("gamma", RetryPolicy.parse("300ms", max_attempts=2))
    assert "gamma" in transport.topology.partners
    assert transport.topology.retry_queue(transport.topology.tiers[1]).endswith(".retry.300ms")
    recorder = Recorder(lambda d: Retry("partner_timeout") if d.attempt == 1 else Ack())
    await transport.consume(["gamma"], recorder)
    report = await transport.publish_many(envelopes("gamma", 2))
    assert len(report.confirmed) == 2
    await wait_until(lambda: len(recorder.seen) == 4)
    assert sorted(d.attempt for d in recorder.seen) == [1, 1, 2, 2]
    with pytest.raises(TopologyError):
        await transport.consume(["delta"], recorder)


async def wait_for_depth(transport: RabbitTransport, queue: str, expected: int) -> None:
    """Poll a queue's depth until it is `expected` (the broker settles asynchronously)."""
    deadline = time.monotonic() + 15
    while (current := await depth(transport, queue)) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"{queue} holds {current}, expected {expected}")
        await asyncio.sleep(0.05)


async def test_no_broker_is_a_clear_error_without_the_password() -> None:
    topology = build_topology(unique_prefix(), ["alpha"])
    with pytest.raises(BrokerError) as caught:
        await RabbitTransport.connect("amqp://gatehouse:s3cret@127.0.0.1:1/", topology)
    assert caught.value.code == "broker_unavailable"
    assert "s3cret" not in str(caught.value)


async def test_upgrade_moves_a_legacy_work_queue_to_the_single_active_consumer_queue(
    amqp_url: str,
) -> None:
    """A queue from before single active consumer: unbound, emptied into the new one, deleted."""
    topology = build_topology(unique_prefix(), ["alpha"], FAST)
    legacy = topology.legacy_delivery_queue("alpha")
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            topology.deliveries_exchange, aio_pika.ExchangeType.DIRECT, durable=True
        )
        old_arguments = {"x-queue-type": "quorum", "x-delivery-limit": 20}
        queue = await channel.declare_queue(legacy, durable=True, arguments=old_arguments)
        await queue.bind(exchange, "alpha")
        for n in range(3):
            await exchange.publish(
                aio_pika.Message(f"jwe:{n}".encode(), message_id=f"m{n}", headers={"a": n}),
                routing_key="alpha",
            )
        transport = await RabbitTransport.connect(amqp_url, topology, connection_name="upgrade")
        try:
            await transport.declare()
            assert await depth(transport, topology.delivery_queue("alpha")) == 3
            recorder = Recorder()
            await transport.consume(["alpha"], recorder)
            await wait_until(lambda: len(recorder.seen) == 3)
            assert sorted(d.message_id for d in recorder.seen) == ["m0", "m1", "m2"]
            check = await connection.channel()
            with pytest.raises(ChannelNotFoundEntity):
                await check.declare_queue(legacy, passive=True)  # retired
        finally:
            await transport.close(grace=1.0)
    finally:
        await connection.close()
        await delete_topology(amqp_url, topology)


async def test_a_partner_queue_has_one_active_consumer_across_transports(
    make_transport: MakeTransport,
) -> None:
    """Two workers consume one partner: only one receives, with prefetch as the bound."""
    first, second = await make_transport(), await make_transport()
    held = asyncio.Event()
    running: list[str] = []

    async def slow(name: str, delivery: Delivery) -> Ack:
        running.append(name)
        await held.wait()
        return Ack()

    await first.consume(["alpha"], lambda d: slow("first", d), prefetch=4)
    await second.consume(["alpha"], lambda d: slow("second", d), prefetch=4)
    await first.publish_many(envelopes("alpha", 12))
    await wait_until(lambda: len(running) == 4)
    await asyncio.sleep(0.3)  # time for any wrongly active second consumer to get messages
    assert len(running) == 4
    assert len(set(running)) == 1
    held.set()
    await wait_until(lambda: len(running) == 12)
