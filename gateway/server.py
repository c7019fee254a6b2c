"""Run gateway processes: the HTTP API, the delivery engine, or both; stop gracefully.

One process runs in the foreground; several API processes are gunicorn workers
(`aiohttp.GunicornUVLoopWebWorker`) built by `api_process`, supervised and restarted by
gunicorn's arbiter.
"""

from __future__ import annotations

import asyncio
import ctypes
import enum
import gc
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import structlog
from aiohttp import web

from gateway.http.app import SHUTDOWN_GRACE_SECONDS, create_app, create_ops_app
from gateway.listener_tls import server_tls_context
from gateway.logging import configure_logging
from gateway.service import Gateway
from gateway.settings import Settings, load_settings

log = structlog.get_logger("gateway.server")
ROLE_VARIABLE = "GATEWAY_SERVE_ROLE"  # how `gateway serve` tells its gunicorn workers the role
OPS_FD_VARIABLE = "GATEWAY_OPS_FD"  # the operations socket gunicorn's arbiter opened for all


class Role(enum.StrEnum):
    """What a process does; any number of each can run against one database and broker."""

    API = "api"
    WORKER = "worker"
    ALL = "all"

    @property
    def delivers(self) -> bool:
        """This role runs the delivery engine."""
        return self in (Role.WORKER, Role.ALL)


_M_MMAP_THRESHOLD = -3  # glibc's mallopt(3) parameter
LARGE_BLOCK = 128 * 1024


def map_large_blocks() -> bool:
    """Keep glibc's allocator at its starting thresholds, in this process and those it forks:
    blocks of 128 KiB or more are mapped on their own once the heap would grow, and what is
    freed at the heap's top goes back. glibc alone raises both to the largest block freed so
    far, so after one large record the next one's freed buffers stay resident (docs/adr/0008).
    An operator's MALLOC_MMAP_THRESHOLD_ wins; off glibc, nothing changes."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK) == 1)


def settle_heap() -> None:
    """After start-up: free its garbage, then exempt what is left from the cyclic collector.

    The long-lived start-up objects (SQLAlchemy, pydantic, the policy snapshot) would otherwise
    be walked by every full collection, with the event loop stopped.
    """
    gc.collect()
    gc.freeze()


@asynccontextmanager
async def ops_listener(gateway: Gateway, sock: socket.socket | None = None) -> AsyncIterator[str]:
    """Serve /healthz, /readyz and /metrics on GATEWAY_OPS_HOST:GATEWAY_OPS_PORT (or on `sock`,
    the listening socket gunicorn's arbiter shares with its processes); yields its URL."""
    runner = web.AppRunner(create_ops_app(gateway), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        settings = gateway.settings
        site = (
            web.TCPSite(runner, settings.ops_host, settings.ops_port)
            if sock is None
            else web.SockSite(runner, sock)
        )
        await site.start()
        host, port = runner.addresses[0][:2]
        log.info("ops_listening", host=host, port=port)
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def shared_ops_socket() -> socket.socket | None:
    """In a gunicorn worker: the operations socket the arbiter opened before forking."""
    fd = os.environ.get(OPS_FD_VARIABLE)
    return None if fd is None else socket.socket(fileno=int(fd))


async def api_process() -> web.Application:
    """A gunicorn worker's application: the gateway opened, started and closed with it, and
    the operations listener on the socket all workers share."""
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level, cache_loggers=True)
    role = Role(os.environ.get(ROLE_VARIABLE, Role.API))
    gateway = await Gateway.open(settings, deliver=role.delivers)
    app = create_app(gateway, owns_gateway=True)
    sock = shared_ops_socket()

    async def operations(_app: web.Application) -> AsyncIterator[None]:
        async with ops_listener(gateway, sock):
            yield

    app.cleanup_ctx.append(operations)
    app.on_startup.append(lambda _app: _settled())
    return app


async def _settled() -> None:
    settle_heap()


async def serve(
    settings: Settings,
    role: Role = Role.ALL,
    *,
    stop: asyncio.Event | None = None,
    started: Callable[[str], None] | None = None,
    cache_loggers: bool = False,
) -> None:
    """Run one process until SIGTERM/SIGINT (or `stop` is set): finish in-flight work, close.

    `started` is called with the API's URL (empty for the worker role) once it serves.
    `cache_loggers`: for a process of its own (the CLI), see `configure_logging`.
    """
    configure_logging(settings.log_format, settings.log_level, cache_loggers=cache_loggers)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        gateway = await Gateway.open(settings, deliver=role.delivers)
        if role is Role.WORKER:
            await _deliver(gateway, stop, started)
        else:
            await _listen(gateway, settings, role, stop, started)
    finally:
        # Only now: a repeated SIGTERM during the graceful stop must not kill us half-way.
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


async def _deliver(
    gateway: Gateway, stop: asyncio.Event, started: Callable[[str], None] | None
) -> None:
    try:
        await gateway.start()
        async with ops_listener(gateway):
            log.info("delivering", role=str(Role.WORKER))
            if started is not None:
                started("")
            await stop.wait()
            log.info("stopping", role=str(Role.WORKER))
    finally:
        await gateway.close(SHUTDOWN_GRACE_SECONDS)


async def _listen(
    gateway: Gateway,
    settings: Settings,
    role: Role,
    stop: asyncio.Event,
    started: Callable[[str], None] | None,
) -> None:
    runner = web.AppRunner(
        create_app(gateway, owns_gateway=True),
        shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
        access_log=None,
    )
    try:
        await runner.setup()  # starts the gateway's background work (cleanup_ctx)
        tls = server_tls_context(settings)
        await web.TCPSite(runner, settings.host, settings.port, ssl_context=tls).start()
        host, port = runner.addresses[0][:2]
        async with ops_listener(gateway):
            log.info("listening", host=host, port=port, role=str(role))
            if started is not None:
                started(f"{'https' if tls else 'http'}://{host}:{port}")
            await stop.wait()
            log.info("stopping", role=str(role))
    finally:
        await runner.cleanup()  # stops accepting, lets requests finish, closes the gateway
