"""Run a gateway process: the HTTP API, the delivery workers, or both; stop gracefully."""

from __future__ import annotations

import asyncio
import enum
import gc
import signal
from collections.abc import Callable
from typing import Protocol

import structlog
from aiohttp import web

from gateway.http.app import create_app
from gateway.logging import configure_logging
from gateway.seal_pool import SealPool
from gateway.service import Gateway
from gateway.settings import Settings
from gateway.write_pool import WritePool

log = structlog.get_logger("gateway.server")
SHUTDOWN_GRACE_SECONDS = 15.0


class Role(enum.StrEnum):
    """What a process does; any number of each can run against one database and broker."""

    API = "api"
    WORKER = "worker"
    ALL = "all"


class Worker(Protocol):
    """What the worker role starts (the delivery engine)."""

    async def start(self) -> None:
        """Begin relaying and delivering."""
        ...

    async def stop(self, grace: float) -> None:
        """Finish in-flight deliveries (up to `grace` seconds) and close connections."""
        ...


WorkerFactory = Callable[[Gateway], Worker]


def settle_heap(_url: str = "") -> None:
    """After start-up: free its garbage, then exempt what is left from the cyclic collector.

    A started process holds some 130,000 long-lived objects (SQLAlchemy, pydantic, the policy
    snapshot) that every full collection walked again: 40-100 ms with the event loop stopped,
    several times a minute under load, the API's p99. Frozen objects are still freed by
    reference counting; only cycles among them would outlive their use. For a process's own
    server (the CLI), not for a library caller sharing its heap.
    """
    gc.collect()
    gc.freeze()


async def _start_helpers(settings: Settings, gateway: Gateway) -> list[SealPool | WritePool]:
    """The API's worker processes: one seals envelopes, one records accepted disclosures."""
    helpers: list[SealPool | WritePool] = []
    if settings.seal_in_worker:
        seals = gateway.pipeline.seal_pool = SealPool(settings.keys_dir)
        helpers.append(seals)
        await seals.start()
    if settings.write_in_worker and gateway.store.is_sqlite_file:
        writes = gateway.group_commit.pool = WritePool(
            settings.resolved_database_url, settings.keys_dir
        )
        helpers.append(writes)
        await writes.start()
        gateway.sealer.delegated = lambda: writes.usable  # it seals the chain meanwhile
    return helpers


async def serve(
    settings: Settings,
    role: Role = Role.ALL,
    *,
    worker_factory: WorkerFactory | None = None,
    stop: asyncio.Event | None = None,
    started: Callable[[str], None] | None = None,
    reuse_port: bool = False,
    cache_loggers: bool = False,
) -> None:
    """Run until SIGTERM/SIGINT (or `stop` is set): finish in-flight work, then close.

    `cache_loggers`: for a process of its own (the CLI), see `configure_logging`.
    """
    configure_logging(settings.log_format, settings.log_level, cache_loggers=cache_loggers)
    gateway = await Gateway.open(settings)
    gateway.start()
    helpers: list[SealPool | WritePool] = []
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner: web.AppRunner | None = None
    worker: Worker | None = None
    try:
        if role in (Role.WORKER, Role.ALL) and worker_factory is not None:
            worker = worker_factory(gateway)
            await worker.start()
        if role in (Role.API, Role.ALL):
            helpers = await _start_helpers(settings, gateway)
            runner = web.AppRunner(
                create_app(gateway), shutdown_timeout=SHUTDOWN_GRACE_SECONDS, access_log=None
            )
            await runner.setup()
            site = web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port)
            await site.start()
            address = runner.addresses[0]
            url = f"http://{address[0]}:{address[1]}"
            log.info("listening", host=address[0], port=address[1], role=str(role))
            if started is not None:
                started(url)
        elif started is not None:
            started("")
        await stop.wait()
        log.info("stopping", role=str(role))
    finally:
        try:
            if runner is not None:
                await runner.cleanup()  # stops accepting, lets in-flight requests finish
            if worker is not None:
                await worker.stop(SHUTDOWN_GRACE_SECONDS)
            for helper in helpers:
                await helper.close()
            await gateway.close()
        finally:
            # Only now: a repeated SIGTERM during the graceful stop must not kill us half-way.
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
