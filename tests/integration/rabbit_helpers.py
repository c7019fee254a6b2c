"""Helpers for the RabbitMQ transport tests: unique topologies, clean-up, polling, collecting."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika

from agreements.loader import default_catalog_dir, load_catalog
from gateway.queue.messages import Ack, Action, Delivery, OutgoingMessage
from gateway.queue.topology import Topology, build_topology
from gateway.settings import load_settings
from tests.service_process import seeded_environment
from tests.services import unique_name
from tests.tcp_proxy import TcpProxy


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


@dataclass(frozen=True)
class BrokerBehindProxy:
    """A seeded `gateway serve` environment whose broker is reached through `proxy`."""

    proxy: TcpProxy
    prefix: str
    env: dict[str, str]
    token: str


@asynccontextmanager
async def broker_behind_proxy(
    tmp_path: Path, amqp_url: str, name: str
) -> AsyncIterator[BrokerBehindProxy]:
    """The real RabbitMQ behind a TCP proxy the test controls, a unique prefix, and a database
    seeded for a service with JSON logs; afterwards the proxy closes and the catalog's queues
    on that prefix are deleted. Stop the service inside the block."""
    proxy = await TcpProxy("127.0.0.1", 5672).start()
    prefix = unique_name(name)
    try:
        env, token = await asyncio.to_thread(
            seeded_environment,
            tmp_path,
            GATEWAY_BROKER_URL=f"amqp://guest:guest@127.0.0.1:{proxy.port}/",
            GATEWAY_BROKER_PREFIX=prefix,
            GATEWAY_LOG_FORMAT="json",
        )
        yield BrokerBehindProxy(proxy, prefix, env, token)
    finally:
        await proxy.close()
        partners = list(load_catalog(default_catalog_dir()).partners)
        await delete_topology(
            amqp_url, build_topology(prefix, partners, load_settings().retry_policy)
        )
