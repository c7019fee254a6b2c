"""Helpers for the RabbitMQ transport tests: unique topologies, clean-up, polling, collecting."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import aio_pika

from gateway.queue.messages import Ack, Action, Delivery, OutgoingMessage
from gateway.queue.topology import Topology


def unique_prefix() -> str:
    """A per-test prefix, so runs and engineers never share a queue."""
    return f"ghtest.{uuid.uuid4().hex[:10]}"


def envelopes(partner: str, count: int, tag: str = "m") -> list[OutgoingMessage]:
    """Small synthetic envelopes (no personal data: the body is just a label)."""
    return [
        OutgoingMessage(f"{tag}-{partner}-{n}", partner, f"jwe:{tag}:{n}".encode())
        for n in range(count)
    ]


async def wait_until(predicate: Callable[[], bool], within: float = 15.0) -> None:
    """Poll with a deadline instead of sleeping for a guessed time."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.02)


async def delete_topology(url: str, topology: Topology) -> None:
    """Delete every queue and exchange a test declared."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for queue in topology.queues():
            await channel.queue_delete(queue.name)
        for exchange in topology.exchanges():
            await channel.exchange_delete(exchange.name)
    finally:
        await connection.close()


@dataclass
class Recorder:
    """A handler that records every delivery and answers with a scripted action."""

    decide: Callable[[Delivery], Action] = lambda _delivery: Ack()
    seen: list[Delivery] = field(default_factory=list)

    async def __call__(self, delivery: Delivery) -> Action:
        self.seen.append(delivery)
        return self.decide(delivery)

    def ids(self) -> set[str]:
        """Distinct message ids seen so far."""
        return {d.message_id for d in self.seen}

    def attempts(self, message_id: str) -> list[int]:
        """The attempt numbers one message arrived with, in order."""
        return [d.attempt for d in self.seen if d.message_id == message_id]


def close_connection_from_server(connection_name: str) -> bool:
    """Force-close one named client connection with rabbitmqctl; False when that is unavailable."""
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        return False
    listing = subprocess.run(
        [ctl, "list_connections", "-q", "--no-table-headers", "pid", "client_properties"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    closed = False
    for line in listing.stdout.splitlines():
        pid, _, properties = line.partition("\t")
        if f'{{"connection_name","{connection_name}"}}' in properties:
            result = subprocess.run(
                [ctl, "close_connection", pid, "gatehouse test"],
                capture_output=True,
                check=False,
                timeout=30,
            )
            closed = closed or result.returncode == 0
    return closed
