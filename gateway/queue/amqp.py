"""AMQP plumbing for the RabbitMQ transport: message codec, broker errors, consumer bookkeeping."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aiormq.exceptions import AMQPError, ChannelInvalidStateError, DeliveryError, PublishError

from gateway.errors import GatewayError
from gateway.queue.messages import (
    HEADER_ATTEMPT,
    HEADER_DEAD_REASON,
    HEADER_PARTNER,
    HEADER_REASON,
    HEADER_REPLAYS,
    DeadLettered,
    Delayed,
    Delivery,
    OutgoingMessage,
)
from gateway.queue.topology import RETRY_TIER_HEADER

# What a broker hiccup looks like from aio-pika: settle later (the broker redelivers), never crash.
# aiormq raises StopAsyncIteration for a connection closed during its handshake.
BROKER_FAULTS = (
    AMQPError,
    ChannelInvalidStateError,
    ConnectionError,
    TimeoutError,
    StopAsyncIteration,
)


class BrokerError(GatewayError):
    """The broker could not be reached or refused an operation."""

    code = "broker_unavailable"


class TopologyConflictError(BrokerError):
    """A queue or exchange exists with other arguments than this topology declares."""

    code = "broker_topology_conflict"


def int_header(headers: Mapping[str, Any], name: str, default: int) -> int:
    """An integer header, or the default when it is missing or not an integer."""
    value = headers.get(name, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str_header(headers: Mapping[str, Any], name: str) -> str | None:
    value = headers.get(name)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def to_delivery(message: AbstractIncomingMessage, partner: str) -> Delivery:
    """Read a broker message into a Delivery; missing or odd headers fall back to defaults."""
    headers: Mapping[str, Any] = message.headers or {}
    return Delivery(
        message_id=message.message_id or "",
        partner_id=partner,
        body=message.body,
        attempt=max(1, int_header(headers, HEADER_ATTEMPT, 1)),
        redelivered=bool(message.redelivered),
        delivery_count=int_header(headers, "x-delivery-count", 0),
        last_reason=_str_header(headers, HEADER_REASON),
        replays=int_header(headers, HEADER_REPLAYS, 0),
        content_type=message.content_type or "application/jose",
    )


def amqp_message(
    message_id: str, body: bytes, content_type: str, headers: dict[str, Any]
) -> aio_pika.Message:
    """Every message we publish is persistent and carries the disclosure id as message_id."""
    return aio_pika.Message(
        body,
        message_id=message_id,
        content_type=content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers=headers,
    )


def failure_code(exc: BaseException) -> str:
    """The reason code for a publish the broker did not confirm."""
    if isinstance(exc, PublishError):
        return "unroutable"  # no queue for this partner: refuse rather than drop silently
    if isinstance(exc, DeliveryError):
        return "nacked"
    if isinstance(exc, TimeoutError):
        return "confirm_timeout"
    return "broker_unavailable"


def outgoing_message(message: OutgoingMessage) -> aio_pika.Message:
    """A new delivery as a persistent AMQP message."""
    headers = {HEADER_ATTEMPT: message.attempt, HEADER_PARTNER: message.partner_id}
    return amqp_message(message.message_id, message.body, message.content_type, headers)


def settlement_message(settlement: Delayed | DeadLettered, delivery: Delivery) -> aio_pika.Message:
    """The copy a retry or a dead letter publishes: same id and body, headers saying why."""
    headers: dict[str, Any] = {
        HEADER_PARTNER: delivery.partner_id,
        HEADER_REPLAYS: delivery.replays,
    }
    if isinstance(settlement, Delayed):
        headers |= {
            RETRY_TIER_HEADER: settlement.tier.name,
            HEADER_ATTEMPT: settlement.attempt,
            HEADER_REASON: settlement.reason,
        }
    else:
        headers |= {HEADER_ATTEMPT: delivery.attempt, HEADER_DEAD_REASON: settlement.reason}
        if settlement.last_reason:
            headers[HEADER_REASON] = settlement.last_reason
    return amqp_message(delivery.message_id, delivery.body, delivery.content_type, headers)


def dead_reason(message: AbstractIncomingMessage) -> str | None:
    """Why a message was dead-lettered: our header, else the broker's first-death reason."""
    headers: Mapping[str, Any] = message.headers or {}
    return _str_header(headers, HEADER_DEAD_REASON) or _str_header(headers, "x-first-death-reason")


def replayed_message(message: AbstractIncomingMessage, partner: str) -> aio_pika.Message:
    """A dead letter sent back as a fresh attempt 1, counting the replays."""
    replays = int_header(message.headers or {}, HEADER_REPLAYS, 0) + 1
    headers = {HEADER_ATTEMPT: 1, HEADER_PARTNER: partner, HEADER_REPLAYS: replays}
    content_type = message.content_type or "application/jose"
    return amqp_message(message.message_id or "", message.body, content_type, headers)


def moved_message(message: AbstractIncomingMessage) -> aio_pika.Message:
    """The same message for another queue: id, body and our headers (not the broker's `x-`)."""
    headers = {k: v for k, v in (message.headers or {}).items() if not k.startswith("x-")}
    content_type = message.content_type or "application/jose"
    return amqp_message(message.message_id or "", message.body, content_type, headers)


@dataclass
class PartnerConsumer:
    """One partner's channel, queue and consumer tag."""

    channel: AbstractChannel
    queue: AbstractQueue
    tag: str


class PartnerConsumers:
    """Running consumers, one channel per partner; `cancel` stops them and drains handlers."""

    def __init__(self) -> None:
        self._consumers: dict[str, PartnerConsumer] = {}
        self._inflight: set[asyncio.Task[Any]] = set()

    @property
    def partners(self) -> tuple[str, ...]:
        """The partners being consumed."""
        return tuple(self._consumers)

    @property
    def inflight(self) -> int:
        """Handlers running now."""
        return len(self._inflight)

    def add(self, partner: str, consumer: PartnerConsumer) -> None:
        """Register a started consumer."""
        self._consumers[partner] = consumer

    def track(self) -> None:
        """Remember the running handler task so cancel() can let it finish."""
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def cancel(self, grace: float = 10.0) -> None:
        """Stop taking messages, give running handlers `grace` seconds, then close channels.

        Whatever is still unacknowledged afterwards goes back to its queue for another worker.
        """
        for consumer in self._consumers.values():
            with contextlib.suppress(*BROKER_FAULTS):
                await consumer.queue.cancel(consumer.tag)
        pending = self._inflight - {asyncio.current_task()}
        if pending:
            await asyncio.wait(pending, timeout=grace)
        for consumer in self._consumers.values():
            with contextlib.suppress(*BROKER_FAULTS):
                await consumer.channel.close()
        self._consumers.clear()
