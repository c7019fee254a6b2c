"""RabbitMQ transport (aio-pika): declare the topology, publish with confirms, consume, replay.

One robust connection; one confirming channel for publishing (new deliveries, retries, dead
letters); one channel per partner consumer, so a partner whose handler never finishes holds only
its own prefetch window. Every settlement publishes first and acks only after the broker's
confirm, so a crash in between leaves a duplicate (same message id), never a loss.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from aiormq.abc import ChannelFrame
from aiormq.exceptions import ChannelNotFoundEntity, ChannelPreconditionFailed
from pamqp.heartbeat import Heartbeat

from gateway.queue.amqp import (
    BROKER_FAULTS,
    BrokerError,
    PartnerConsumer,
    PartnerConsumers,
    TopologyConflictError,
    dead_reason,
    failure_code,
    int_header,
    moved_message,
    outgoing_message,
    replayed_message,
    settlement_message,
    to_delivery,
)
from gateway.queue.body_frames import share_body_frames
from gateway.queue.messages import (
    HEADER_REPLAYS,
    Acked,
    Action,
    DeadLetter,
    DeadLettered,
    Defer,
    Delivery,
    Handler,
    OutgoingMessage,
    ParkedLetter,
    PublishReport,
    QueueDepth,
    ReplayReport,
    Settlement,
    settle,
)
from gateway.queue.retry import RetryPolicy
from gateway.queue.topology import BindingSpec, ExchangeSpec, QueueSpec, Topology, TopologyError

__all__ = ["BrokerError", "PartnerConsumers", "RabbitTransport", "TopologyConflictError"]

log = structlog.get_logger(__name__)

LARGE_BODY = 1024 * 1024  # published one at a time (`publish_many`)
_HEARTBEAT = ChannelFrame.marshall(channel_number=0, frames=[Heartbeat()])


class RabbitTransport:
    """Deliveries over RabbitMQ for one topology; build with `await RabbitTransport.connect()`."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        publisher: AbstractChannel,
        topology: Topology,
        *,
        confirm_timeout: float,
    ) -> None:
        self._connection = connection
        self._publisher = publisher
        self._topology = topology
        self._confirm_timeout = confirm_timeout
        self._consumers: list[PartnerConsumers] = []
        self.reconnects = 0  # how often the robust connection came back (for metrics and tests)
        connection.reconnect_callbacks.add(self._on_reconnect)

    @classmethod
    async def connect(
        cls,
        url: str,
        topology: Topology,
        *,
        connection_name: str = "gatehouse",
        confirm_timeout: float = 30.0,
    ) -> RabbitTransport:
        """Open a robust connection (it reconnects by itself) and a confirming publish channel."""
        share_body_frames()
        try:
            connection = await aio_pika.connect_robust(
                url, client_properties={"connection_name": connection_name}
            )
            publisher = await connection.channel(publisher_confirms=True, on_return_raises=True)
        except (*BROKER_FAULTS, OSError) as exc:
            # The URL may carry a password: name the error type only.
            raise BrokerError(f"cannot connect to the broker ({type(exc).__name__})") from None
        return cls(connection, publisher, topology, confirm_timeout=confirm_timeout)

    def _on_reconnect(self, *_args: Any) -> None:
        self.reconnects += 1
        log.warning("broker_reconnected", count=self.reconnects)

    @property
    def topology(self) -> Topology:
        """The topology as declared so far (grows with `add_partner`)."""
        return self._topology

    # -- declaring -----------------------------------------------------------------------------
    async def declare(self) -> None:
        """Declare every exchange, queue and binding; idempotent and safe from many processes.

        Then retire the work queues of versions before single active consumer (see topology).
        """
        t = self._topology
        await self._declare(t.exchanges(), t.queues(), t.bindings())
        for partner in t.partners:
            await self._retire_legacy_queue(partner)

    async def _retire_legacy_queue(self, partner: str) -> None:
        """Unbind a legacy work queue, move its messages to the partner's queue, delete it.

        While an old worker still consumes from it the queue is kept (its messages are in that
        worker's hands) and retired at a later start.
        """
        t = self._topology
        name = t.legacy_delivery_queue(partner)
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        moved = 0
        try:
            try:
                legacy = await channel.declare_queue(name, passive=True)
            except ChannelNotFoundEntity:
                return  # none: a fresh install, or already retired
            await legacy.unbind(t.deliveries_exchange, partner)
            exchange = await channel.get_exchange(t.deliveries_exchange, ensure=False)
            while (got := await legacy.get(no_ack=False, fail=False)) is not None:
                await self._publish(exchange, partner, moved_message(got))
                await got.ack()
                moved += 1
            # Quorum queues refuse a conditional delete: look, then delete. It is unbound, so
            # nothing new arrives in between.
            if not await self._drained(channel, name):
                log.warning("legacy_queue_kept", queue=name, count=moved)
                return
            await legacy.delete(if_unused=False, if_empty=False)
        finally:
            with contextlib.suppress(*BROKER_FAULTS):
                await channel.close()
        log.info("legacy_queue_retired", queue=name, count=moved)

    async def add_partner(self, partner: str, retry: RetryPolicy | None = None) -> None:
        """Declare a new partner's queues (and any new delay tiers its policy needs) at runtime."""
        t = self._topology.with_partner(partner, retry)
        await self._declare(
            t.exchanges(),
            t.retry_queues() + t.partner_queues(partner),
            t.retry_bindings() + t.partner_bindings(partner),
        )
        self._topology = t

    async def ensure_tiers(self, policy: RetryPolicy) -> None:
        """Declare the delay tiers of a policy not seen yet (an agreement added at runtime).

        A retry published for a tier with no queue would be confirmed by the broker and dropped,
        so a consumer calls this before it answers Retry with an agreement's policy.
        """
        t = self._topology.with_policy(policy)
        if t is self._topology:
            return
        if {tier.name for tier in t.tiers} != {tier.name for tier in self._topology.tiers}:
            await self._declare(t.exchanges(), t.retry_queues(), t.retry_bindings())
        self._topology = t

    async def _declare(
        self,
        exchanges: Iterable[ExchangeSpec],
        queues: Iterable[QueueSpec],
        bindings: Iterable[BindingSpec],
    ) -> None:
        channel = await self._connection.channel()
        name = ""
        try:
            for exchange in exchanges:
                name = exchange.name
                await channel.declare_exchange(
                    exchange.name, aio_pika.ExchangeType(exchange.type), durable=True
                )
            for queue in queues:
                name = queue.name
                await channel.declare_queue(
                    queue.name, durable=True, arguments=dict(queue.arguments)
                )
            for binding in bindings:
                name = binding.queue
                declared = await channel.get_queue(binding.queue, ensure=False)
                await declared.bind(
                    binding.exchange, binding.routing_key, arguments=dict(binding.arguments)
                )
        except ChannelPreconditionFailed:
            raise TopologyConflictError(
                f"{name} already exists with other arguments; delete it or align the settings"
            ) from None
        finally:
            with contextlib.suppress(*BROKER_FAULTS):
                await channel.close()

    @staticmethod
    async def _drained(channel: AbstractChannel, name: str, within: float = 5.0) -> bool:
        """No consumer and no message left (a quorum queue applies our acks a moment later)."""
        deadline = asyncio.get_running_loop().time() + within
        underlay = await channel.get_underlay_channel()  # the robust channel's answer is cached
        while True:
            left = await underlay.queue_declare(name, passive=True)
            if left.consumer_count:
                return False
            if not left.message_count:
                return True
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(0.1)

    # -- publishing ----------------------------------------------------------------------------
    async def _exchange(self, name: str) -> AbstractExchange:
        return await self._publisher.get_exchange(name, ensure=False)

    async def _publish(
        self, exchange: AbstractExchange, routing_key: str, message: aio_pika.Message
    ) -> None:
        await exchange.publish(
            message, routing_key=routing_key, mandatory=True, timeout=self._confirm_timeout
        )

    async def publish_many(self, messages: Sequence[OutgoingMessage]) -> PublishReport:
        """Publish a batch persistently and await all confirms together (pipelined).

        Only messages in `confirmed` are safely in a queue; the rest carry a reason code
        (`unroutable` for a partner with no queue, `nacked`, `confirm_timeout`,
        `broker_unavailable`, `duplicate_in_batch`) and should be published again later.
        """
        exchange = await self._exchange(self._topology.deliveries_exchange)
        failed: dict[str, str] = {}
        batch: dict[str, OutgoingMessage] = {}
        for message in messages:
            if message.message_id in batch:
                failed[message.message_id] = "duplicate_in_batch"
            else:
                batch[message.message_id] = message
        small = [m for m in batch.values() if len(m.body) < LARGE_BODY]
        large = [m for m in batch.values() if len(m.body) >= LARGE_BODY]
        small_results, large_results = await asyncio.gather(
            asyncio.gather(
                *(self._publish(exchange, m.partner_id, outgoing_message(m)) for m in small),
                return_exceptions=True,
            ),
            self._publish_in_turn(exchange, large),
        )
        results = dict(zip([m.message_id for m in small], small_results, strict=True))
        results.update(zip([m.message_id for m in large], large_results, strict=True))
        confirmed = []
        for message_id in batch:
            result = results[message_id]
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                failed.setdefault(message_id, failure_code(result))
            else:
                confirmed.append(message_id)
        self._let_go_of_last_write()
        if failed:
            log.warning(
                "publish_unconfirmed", count=len(failed), reasons=sorted(set(failed.values()))
            )
        return PublishReport(tuple(confirmed), failed)

    async def _publish_in_turn(
        self, exchange: AbstractExchange, messages: Sequence[OutgoingMessage]
    ) -> list[BaseException | None]:
        """Large messages one after another: aiormq keeps a copy of each message's frames until
        its confirm, so at once they would cost that copy for every one in the batch."""
        results: list[BaseException | None] = []
        for m in messages:
            publish = asyncio.ensure_future(
                self._publish(exchange, m.partner_id, outgoing_message(m))
            )
            await asyncio.sleep(0)  # its frames are queued now, before any wait of its own
            self._let_go_of_last_write()  # so the writer drops them once sent, not at the confirm
            (result,) = await asyncio.gather(publish, return_exceptions=True)
            if isinstance(result, asyncio.CancelledError):
                raise result
            results.append(result)
        return results

    def _let_go_of_last_write(self) -> None:
        """aiormq's writer holds the last frame it wrote until it writes another: after a
        publish, a whole envelope kept through its delivery. A heartbeat (allowed at any time)
        takes its place."""
        transport = self._connection.transport
        if transport is not None:
            # aiormq's own queue, not its API: without it, the frame is only held longer.
            with contextlib.suppress(asyncio.QueueFull, AttributeError):
                transport.connection.write_queue.put_nowait(_HEARTBEAT)

    async def _apply(self, settlement: Settlement, delivery: Delivery) -> None:
        """Publish what a settlement needs (retry or dead letter) and wait for the confirm."""
        if isinstance(settlement, Acked):
            return
        t = self._topology
        name = t.dead_exchange if isinstance(settlement, DeadLettered) else t.retry_exchange
        exchange = await self._exchange(name)
        await self._publish(exchange, delivery.partner_id, settlement_message(settlement, delivery))

    # -- consuming -----------------------------------------------------------------------------
    async def consume(
        self, partner_ids: Iterable[str], handler: Handler, *, prefetch: int = 16
    ) -> PartnerConsumers:
        """Consume each partner's queue on its own channel with manual acks and bounded prefetch.

        The queue has a single active consumer: of all processes consuming it, one receives at
        a time, so `prefetch` bounds the partner's deliveries in flight across all of them.
        The handler returns Ack, Retry, DeadLetter or Defer; a handler that raises counts as
        Defer("handler_error"): the transport never dead-letters what the handler could not
        record as failed. Consumers survive reconnection (robust channels).
        """
        if prefetch < 1:
            raise TopologyError("prefetch must be at least 1")
        consumers = PartnerConsumers()
        self._consumers.append(consumers)
        for partner in partner_ids:
            if partner not in self._topology.partners:
                raise TopologyError(f"no queue declared for partner {partner!r}")
            spec = self._topology.partner_queues(partner)[0]
            channel = await self._connection.channel(publisher_confirms=False)
            await channel.set_qos(prefetch_count=prefetch)
            queue = await channel.declare_queue(
                spec.name, durable=True, arguments=dict(spec.arguments)
            )
            callback = self._callback(partner, handler, consumers)
            tag = await queue.consume(callback, no_ack=False)
            consumers.add(partner, PartnerConsumer(channel, queue, tag))
        return consumers

    def _callback(self, partner: str, handler: Handler, consumers: PartnerConsumers) -> Any:
        async def on_message(message: AbstractIncomingMessage) -> None:
            consumers.track()
            await self._handle(message, partner, handler)

        return on_message

    async def _handle(
        self, message: AbstractIncomingMessage, partner: str, handler: Handler
    ) -> None:
        delivery = to_delivery(message, partner)
        bound = log.bind(message_id=delivery.message_id, partner=partner, attempt=delivery.attempt)
        action: Action
        if not delivery.message_id:
            action = DeadLetter("malformed_message")
        else:
            try:
                action = await handler(delivery)
            except Exception as exc:  # a handler bug must not kill the consumer or lose the message
                # The type only: exception texts (e.g. SQL parameters) may carry personal values.
                bound.error("handler_failed", error_type=type(exc).__name__)
                action = Defer("handler_error")
        settlement = settle(action, delivery, self._topology.policy_for(partner))
        try:
            await self._apply(settlement, delivery)
            await message.ack()
        except BROKER_FAULTS as exc:
            # Not settled: leave it to the broker, which redelivers it (same message id).
            bound.warning("settle_failed", error_type=type(exc).__name__)
            with contextlib.suppress(*BROKER_FAULTS):
                await message.nack(requeue=True)
            return
        if isinstance(settlement, DeadLettered):
            bound.warning("dead_lettered", reason=settlement.reason)

    # -- dead letters and depth ----------------------------------------------------------------
    async def replay_dead_letters(
        self, partner: str, message_ids: Collection[str] | None = None, *, limit: int = 10_000
    ) -> ReplayReport:
        """Move dead letters (all, or these ids) back to the partner's queue as attempt 1."""
        if partner not in self._topology.partners:
            raise TopologyError(f"no queue declared for partner {partner!r}")
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        try:
            queue = await channel.declare_queue(self._topology.dead_queue(partner), passive=True)
            exchange = await channel.get_exchange(self._topology.deliveries_exchange, ensure=False)
            chosen: list[AbstractIncomingMessage] = []
            for _ in range(limit):
                got = await queue.get(no_ack=False, fail=False)
                if got is None:
                    break
                if message_ids is None or got.message_id in message_ids:
                    chosen.append(got)
                # Others stay unacked until the channel closes, so the scan never sees them twice.
            # A quorum queue counts the messages we hold unacked too: this is the whole queue.
            before = await channel.declare_queue(queue.name, passive=True)
            replayed = await self._republish(exchange, partner, chosen)
        finally:
            with contextlib.suppress(*BROKER_FAULTS):
                await channel.close()
        left = (before.declaration_result.message_count or 0) - len(replayed)
        log.info("dead_letters_replayed", partner=partner, count=len(replayed))
        return ReplayReport(tuple(replayed), left)

    async def _republish(
        self, exchange: AbstractExchange, partner: str, chosen: Sequence[AbstractIncomingMessage]
    ) -> list[str]:
        async def one(got: AbstractIncomingMessage) -> str:
            await self._publish(exchange, partner, replayed_message(got, partner))
            await got.ack()
            return got.message_id or ""

        results = await asyncio.gather(*(one(got) for got in chosen), return_exceptions=True)
        return [r for r in results if isinstance(r, str)]

    async def parked_letters(self, *, limit: int = 10_000) -> list[ParkedLetter]:
        """Every partner's dead letters, looked at and left in place (ids and reasons only)."""
        found: list[ParkedLetter] = []
        for partner in self._topology.partners:
            if len(found) >= limit:
                break
            found += await self._parked(partner, limit - len(found))
        return found

    async def _parked(self, partner: str, limit: int) -> list[ParkedLetter]:
        channel = await self._connection.channel()
        found: list[ParkedLetter] = []
        try:
            try:
                name = self._topology.dead_queue(partner)
                queue = await channel.declare_queue(name, passive=True)
            except ChannelNotFoundEntity:
                return found
            for _ in range(limit):
                got = await queue.get(no_ack=False, fail=False)
                if got is None:
                    break
                # Held unacked until the channel closes: none is seen twice, all stay parked.
                replays = int_header(got.headers or {}, HEADER_REPLAYS, 0)
                parked = ParkedLetter(got.message_id or "", partner, dead_reason(got), replays)
                found.append(parked)
        finally:
            with contextlib.suppress(*BROKER_FAULTS):
                await channel.close()
        return found

    async def queue_depths(self) -> list[QueueDepth]:
        """Messages and consumers of every queue in the topology (missing ones skipped)."""
        depths = []
        channel = await self._connection.channel()
        try:
            for spec in self._topology.queues():
                try:
                    queue = await channel.declare_queue(spec.name, passive=True)
                except ChannelNotFoundEntity:
                    channel = await self._connection.channel()
                    continue
                result = queue.declaration_result
                depths.append(
                    QueueDepth(spec.name, result.message_count or 0, result.consumer_count or 0)
                )
        finally:
            with contextlib.suppress(*BROKER_FAULTS):
                await channel.close()
        return depths

    async def close(self, grace: float = 10.0) -> None:
        """Stop consumers (letting handlers finish within `grace` seconds), then disconnect."""
        for consumers in self._consumers:
            await consumers.cancel(grace)
        self._consumers.clear()
        with contextlib.suppress(*BROKER_FAULTS):
            await self._connection.close()
