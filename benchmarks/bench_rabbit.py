"""Publish throughput on the real RabbitMQ: pipelined confirms vs one round trip per message.

Run: .venv/bin/python benchmarks/bench_rabbit.py [--messages 5000] [--url amqp://...]
Prints figures; asserts nothing. Declares a unique prefix and deletes it afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

import aio_pika

from gateway.queue.messages import Ack, Delivery, OutgoingMessage
from gateway.queue.rabbit import RabbitTransport
from gateway.queue.topology import Topology, build_topology

PARTNERS = ("medway-ft", "kent-police", "kmpt", "kent-icb")


def messages(count: int, tag: str) -> list[OutgoingMessage]:
    """Small synthetic envelopes (~600 bytes, like a compact JWE of a short record)."""
    body = os.urandom(450).hex()[:600].encode()
    return [OutgoingMessage(f"{tag}-{n}", PARTNERS[n % len(PARTNERS)], body) for n in range(count)]


async def delete(url: str, topology: Topology) -> None:
    """Remove everything the benchmark declared."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for queue in topology.queues():
            await channel.queue_delete(queue.name)
        for exchange in topology.exchanges():
            await channel.exchange_delete(exchange.name)
    finally:
        await connection.close()


async def run(url: str, count: int, batch: int, sequential: int) -> None:
    """Measure and print."""
    topology = build_topology(f"ghbench.{uuid.uuid4().hex[:8]}", PARTNERS)
    transport = await RabbitTransport.connect(url, topology, connection_name=topology.prefix)
    try:
        await transport.declare()
        pipelined = messages(count, "p")
        started = time.perf_counter()
        confirmed = 0
        for offset in range(0, count, batch):
            report = await transport.publish_many(pipelined[offset : offset + batch])
            confirmed += len(report.confirmed)
        elapsed = time.perf_counter() - started
        print(f"pipelined confirms: {confirmed}/{count} confirmed in {elapsed:.2f}s "
              f"= {confirmed / elapsed:,.0f} publishes/s (batches of {batch})")  # fmt: skip

        one_by_one = messages(sequential, "s")
        started = time.perf_counter()
        for message in one_by_one:
            await transport.publish_many([message])
        elapsed = time.perf_counter() - started
        print(f"one confirm per message: {sequential} in {elapsed:.2f}s "
              f"= {sequential / elapsed:,.0f} publishes/s")  # fmt: skip

        total = count + sequential
        seen: set[str] = set()
        done = asyncio.Event()

        async def handler(delivery: Delivery) -> Ack:
            seen.add(delivery.message_id)
            if len(seen) >= total:
                done.set()
            return Ack()

        started = time.perf_counter()
        await transport.consume(PARTNERS, handler, prefetch=64)
        await asyncio.wait_for(done.wait(), timeout=120)
        elapsed = time.perf_counter() - started
        print(f"consume + ack: {len(seen)} in {elapsed:.2f}s = {len(seen) / elapsed:,.0f} msg/s "
              f"({len(PARTNERS)} partner queues, prefetch 64)")  # fmt: skip
    finally:
        await transport.close(grace=1)
        await delete(url, transport.topology)


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=os.environ.get("GATEWAY_BROKER_URL") or
                        "amqp://guest:guest@127.0.0.1:5672/")  # fmt: skip
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--sequential", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(run(args.url, args.messages, args.batch, args.sequential))


if __name__ == "__main__":
    main()
