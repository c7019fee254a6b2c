"""`gateway`: run the service, the demo and the partner simulator."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Annotated

import typer
import uvloop
from rich.console import Console

from gateway.cli.common import PRIVATE_UMASK, console, invoke
from gateway.demo import run_demo
from gateway.logging import configure_logging
from gateway.partner_sim.cli import register as register_partner_sim
from gateway.policy_tour import print_policy_tour
from gateway.server import Role, map_large_blocks, serve, settle_heap
from gateway.settings import load_settings
from gateway.supervisor import run_supervised

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
            help="Processes to run, supervised by gunicorn (one per core is a good start).",
        ),
    ] = 1,
) -> None:
    """Run the gateway: the HTTP API, the delivery workers, or both, until SIGTERM.

    Example: GATEWAY_DATABASE_URL=postgresql+asyncpg://gh@db/gh gateway serve --role api
    """
    settings = load_settings()
    if processes > 1:
        run_supervised(settings, role, processes)
        return
    map_large_blocks()
    # uvloop: the same asyncio API on libuv, with a fraction of the per-request overhead of
    # the pure-Python event loop and transports.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(settings, role, started=lambda _url: settle_heap(), cache_loggers=True))


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run gateway with these arguments; returns the exit code."""
    return invoke(app, argv)


def run() -> None:
    """Console-script entry point: every file this process creates is private to its user."""
    os.umask(PRIVATE_UMASK)
    sys.exit(main())


if __name__ == "__main__":
    run()
