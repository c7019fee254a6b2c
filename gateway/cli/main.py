"""`gateway`: run the service, the demo and the partner simulator."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Sequence
from typing import Annotated

import typer
import uvloop
from rich.console import Console

from gateway.cli.common import console, invoke
from gateway.demo import run_demo
from gateway.logging import configure_logging
from gateway.partner_sim.cli import register as register_partner_sim
from gateway.policy_tour import print_policy_tour
from gateway.runtime import DeliveryWorker
from gateway.server import Role, WorkerFactory, serve, settle_heap
from gateway.settings import load_settings

app = typer.Typer(
    name="gateway",
    help="Gatehouse, the secure inter-agency disclosure gateway.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Gatehouse, the secure inter-agency disclosure gateway."""


@app.command("serve")
def serve_command(
    role: Annotated[
        Role, typer.Option("--role", help="api, worker, or all (both in one process).")
    ] = Role.ALL,
    processes: Annotated[
        int,
        typer.Option(
            "--processes",
            min=1,
            max=64,
            help="Processes sharing the port (SO_REUSEPORT); one per core is a good start.",
        ),
    ] = 1,
    reuse_port: Annotated[bool, typer.Option("--reuse-port", hidden=True)] = False,
) -> None:
    """Run the gateway: the HTTP API, the delivery workers, or both, until SIGTERM.

    Example: GATEWAY_DATABASE_URL=postgresql+asyncpg://gh@db/gh gateway serve --role api
    """
    settings = load_settings()
    shared = processes > 1 or reuse_port
    children = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and module, fixed arguments
            [
                sys.executable,
                "-m",
                "gateway.cli.main",
                "serve",
                "--role",
                role.value,
                "--reuse-port",
            ]
        )
        for _ in range(processes - 1)
    ]
    try:
        # uvloop: the same asyncio API on libuv, with a fraction of the per-request overhead
        # of the pure-Python event loop and transports.
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(
                serve(
                    settings,
                    role,
                    worker_factory=delivery_worker_factory(),
                    started=settle_heap,
                    reuse_port=shared,
                    cache_loggers=True,
                )
            )
    finally:
        for child in children:
            child.send_signal(signal.SIGTERM)
        for child in children:
            child.wait()


@app.command("demo")
def demo(
    policy_only: Annotated[
        bool, typer.Option("--policy-only", help="Only the policy tour (no service).")
    ] = False,
) -> None:
    """Run Gatehouse end to end on the embedded defaults with simulated partners.

    Example: gateway demo
    """
    out = console()
    if not out.is_terminal:
        out = Console(width=160)  # piped or in CI: wide enough that ids and codes are whole
    configure_logging("console", "warning")
    print_policy_tour(out)
    if policy_only:
        return
    out.rule("The live journey")
    if not asyncio.run(run_demo(out)):
        raise typer.Exit(1)


register_partner_sim(app)  # partner simulator: gateway partner-sim


def delivery_worker_factory() -> WorkerFactory:
    """The delivery engine for the worker role."""
    return DeliveryWorker


def main(argv: Sequence[str] | None = None) -> int:
    """Run gateway with these arguments; returns the exit code."""
    return invoke(app, argv)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
