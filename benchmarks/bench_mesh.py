"""Sends/s through MeshChannel to NHS England's mesh-sandbox, and mesh-client's in the same run.

Usage: .venv/bin/python benchmarks/bench_mesh.py [--messages 1000] [--size 4000]
Prints figures; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _quiet_logs() -> None:
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


async def channel_sends(
    sandbox: Any, body: bytes, messages: int, concurrency: int, **cfg: Any
) -> float:
    """Deliveries/s through MeshChannel.deliver with `concurrency` in flight."""
    from adapters.mesh import MeshChannel
    from gateway.application.channel import DeliveryOutcome, Envelope
    from tests.mesh_sandbox import gateway_config, target

    await sandbox.reset()
    channel = MeshChannel(gateway_config(sandbox, max_connections=max(concurrency, 1), **cfg))
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            envelope = Envelope(str(uuid.uuid4()), "bench-partner", body, "-")
            result = await channel.deliver(envelope, target())
            if result.outcome is not DeliveryOutcome.DISPATCHED:
                raise RuntimeError(f"delivery failed: {result.reason}")

    try:
        await one()  # warm the connection pool
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(messages)))
        return messages / (time.perf_counter() - started)
    finally:
        await channel.close()


async def channel_cycles(sandbox: Any, body: bytes, messages: int, concurrency: int) -> float:
    """Full cycles/s: our channel sends, our client (as the partner) downloads and acknowledges."""
    from adapters.mesh import MeshChannel
    from adapters.mesh_client import MeshClient
    from gateway.application.channel import Envelope
    from tests.mesh_sandbox import RECIPIENT, gateway_config, target

    await sandbox.reset()
    channel = MeshChannel(gateway_config(sandbox, max_connections=concurrency))
    partner = MeshClient(gateway_config(sandbox, mailbox=RECIPIENT, max_connections=concurrency))
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            envelope = Envelope(str(uuid.uuid4()), "bench-partner", body, "-")
            result = await channel.deliver(envelope, target())
            mesh_id = result.detail["mesh_message_id"]
            received = await partner.download(mesh_id)
            if received.body != body:
                raise RuntimeError("bytes changed in transit")
            await partner.acknowledge(mesh_id)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(messages)))
        return messages / (time.perf_counter() - started)
    finally:
        await channel.close()
        await partner.close()


async def mesh_client_sends(sandbox: Any, body: bytes, messages: int, threads: int) -> float:
    """NHS England's synchronous mesh-client: sends/s, one client per thread."""
    from tests.mesh_sandbox import RECIPIENT, SENDER, WORKFLOW, partner_client

    await sandbox.reset()
    clients = [partner_client(sandbox, SENDER) for _ in range(threads)]
    per_thread = messages // threads

    def run(client: Any) -> None:
        for _ in range(per_thread):
            client.send_message(RECIPIENT, body, workflow_id=WORKFLOW, local_id=str(uuid.uuid4()))

    try:
        clients[0].handshake()
        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(run, clients))
        return per_thread * threads / (time.perf_counter() - started)
    finally:
        for client in clients:
            client.close()


async def bench(messages: int, size: int) -> None:
    from tests.mesh_sandbox import running_sandbox

    body = os.urandom(size)
    with tempfile.TemporaryDirectory() as workdir, running_sandbox(Path(workdir)) as sandbox:
        print(f"mesh-sandbox over plain HTTP on loopback; {messages} messages of {size} bytes")
        print(f"{'client':48} {'in flight':>9} {'per second':>11}")
        for concurrency in (1, 8, 32):
            rate = await channel_sends(sandbox, body, messages, concurrency)
            print(f"{'MeshChannel.deliver (track, then send)':48} {concurrency:>9} {rate:>11.0f}")
        rate = await channel_sends(sandbox, body, messages, 32, track_before_send=False)
        print(f"{'MeshChannel.deliver (send only)':48} {32:>9} {rate:>11.0f}")
        for threads in (1, 8):
            rate = await mesh_client_sends(sandbox, body, messages, threads)
            print(f"{'mesh-client send_message (threads)':48} {threads:>9} {rate:>11.0f}")
        rate = await channel_cycles(sandbox, body, messages // 2, 16)
        print(f"{'full cycle: deliver + download + acknowledge':48} {16:>9} {rate:>11.0f}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--size", type=int, default=4000, help="envelope bytes")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    _quiet_logs()
    asyncio.run(bench(args.messages, args.size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
