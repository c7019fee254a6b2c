"""Several gateway processes under gunicorn's arbiter, which starts them, restarts one that
dies, and passes SIGTERM on for a graceful stop.

API processes are `aiohttp.GunicornUVLoopWebWorker`s; delivery-only processes are
`DeliveryProcess` workers. Metrics are kept per process in PROMETHEUS_MULTIPROC_DIR and summed
by whichever process is scraped. The arbiter opens the operations socket once, before it forks:
every process accepts on that one socket, so a scrape reaches whichever is free and sees the sum,
and no other program can take the port while a process is being replaced.
This module is also gunicorn's config (`-c python:...`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import structlog
import uvloop
from aiohttp.worker import GunicornUVLoopWebWorker
from gunicorn.arbiter import Arbiter
from gunicorn.glogging import Logger
from gunicorn.workers.base import Worker
from prometheus_client import multiprocess

from gateway.http.app import SHUTDOWN_GRACE_SECONDS
from gateway.listener_tls import server_tls_context
from gateway.logging import configure_logging
from gateway.queue.amqp import BrokerError, TopologyConflictError
from gateway.server import (
    OPS_FD_VARIABLE,
    ROLE_VARIABLE,
    Role,
    map_large_blocks,
    ops_listener,
    settle_heap,
    shared_ops_socket,
)
from gateway.service import Gateway
from gateway.settings import Settings, load_settings

HEARTBEAT_SECONDS = 1.0
log = structlog.get_logger("gateway.supervisor")


def run_supervised(settings: Settings, role: Role, processes: int) -> None:
    """Replace this process with gunicorn running `processes` gateway processes of `role`."""
    env = dict(os.environ)
    env[ROLE_VARIABLE] = role.value
    # Fresh per run: the arbiter and its workers start with no counts from an earlier run.
    env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="gatehouse-metrics-")
    if role is Role.WORKER:
        # gunicorn always listens; delivery processes serve nothing, so on a private socket.
        bind = f"unix:{tempfile.mkdtemp(prefix='gatehouse-worker-')}/unused.sock"
        worker_class = "gateway.supervisor.DeliveryProcess"
    else:
        bind = f"{settings.host}:{settings.port}"
        worker_class = "gateway.supervisor.ApiProcess"
    options = {
        "--config": "python:gateway.supervisor",
        "--bind": bind,
        "--workers": str(processes),
        "--worker-class": worker_class,
        "--graceful-timeout": str(int(SHUTDOWN_GRACE_SECONDS) + 5),
        "--name": f"gatehouse-{role.value}",
    }
    if settings.tls_cert is not None and role is not Role.WORKER:
        # gunicorn serves TLS when given a certificate; ApiProcess builds the context itself.
        options["--certfile"] = str(settings.tls_cert)
        options["--keyfile"] = str(settings.tls_key or settings.tls_cert)
    argv = [sys.executable, "-m", "gunicorn", "gateway.server:api_process", "--no-control-socket"]
    argv += [part for pair in options.items() for part in pair]
    os.execve(sys.executable, argv, env)  # noqa: S606 - our own interpreter, fixed arguments


class GunicornLogs(Logger):  # type: ignore[misc]
    """gunicorn's own lines (arbiter and workers) as JSON through structlog, like ours."""

    def setup(self, cfg: Any) -> None:
        """Drop gunicorn's plain-text handlers: its records go to the root logger's."""
        super().setup(cfg)
        settings = load_settings()
        configure_logging(settings.log_format, settings.log_level, cache_loggers=True)
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                log.removeHandler(handler)
            log.propagate = True


logger_class = "gateway.supervisor.GunicornLogs"  # gunicorn reads its settings from this module


_OPS_SOCKETS: list[socket.socket] = []  # the arbiter holds the operations socket open


def on_starting(_server: Any) -> None:
    """gunicorn hook, in the arbiter before any worker: open the operations socket for all,
    and set the allocator up for large records (its workers are forked from it)."""
    map_large_blocks()
    settings = load_settings()
    sock = socket.create_server((settings.ops_host, settings.ops_port))
    sock.set_inheritable(True)
    _OPS_SOCKETS.append(sock)
    os.environ[OPS_FD_VARIABLE] = str(sock.fileno())


def child_exit(_server: Any, worker: Any) -> None:
    """gunicorn hook: a process's live gauges go with it."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def _broker_failure_at_start(role: Role) -> Iterator[None]:
    """A broker away while this process starts stops only this process, with one line and exit
    1: the arbiter starts it again. Left to gunicorn it would be a failed boot, which halts every
    process, the ones serving included; that stays the answer to a topology conflict, which a
    new start would not mend."""
    try:
        yield
    except BrokerError as exc:
        log.error("start_failed", reason=exc.code, role=role.value)
        conflict = isinstance(exc, TopologyConflictError)
        sys.exit(Arbiter.WORKER_BOOT_ERROR if conflict else 1)


class ApiProcess(GunicornUVLoopWebWorker):
    """aiohttp's gunicorn worker with the listener's TLS settings (gateway.listener_tls)."""

    def run(self) -> None:
        """Serve; a broker away at start-up (role `all`) exits 1 to be started again."""
        with _broker_failure_at_start(Role(os.environ.get(ROLE_VARIABLE, Role.API))):
            super().run()

    @staticmethod
    def _create_ssl_context(cfg: Any) -> ssl.SSLContext:
        context = server_tls_context(load_settings())
        if context is None:  # gunicorn asks only when it was given a certificate
            raise RuntimeError("TLS requested without GATEWAY_TLS_CERT")
        return context


class DeliveryProcess(Worker):  # type: ignore[misc]
    """A gunicorn worker that runs the delivery engine and no HTTP."""

    def run(self) -> None:
        """Deliver until gunicorn asks this process to stop."""
        with (
            _broker_failure_at_start(Role.WORKER),
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
        ):
            runner.run(self._deliver())

    async def _deliver(self) -> None:
        settings = load_settings()
        configure_logging(settings.log_format, settings.log_level, cache_loggers=True)
        gateway = await Gateway.open(settings, deliver=True)
        try:
            await gateway.start()
            async with ops_listener(gateway, shared_ops_socket()):
                settle_heap()
                while self.alive:  # gunicorn's signal handlers clear it
                    if os.getppid() != self.ppid:
                        # The arbiter was killed: no one would restart or stop this process.
                        log.warning("supervisor_gone", role="worker")
                        break
                    self.notify()
                    await asyncio.sleep(HEARTBEAT_SECONDS)
        finally:
            await gateway.close(SHUTDOWN_GRACE_SECONDS)
