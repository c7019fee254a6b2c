"""`gateway`: run the service, the demo and the partner simulator."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from gateway.cli.common import console, invoke
from gateway.partner_sim.cli import register as register_partner_sim
from gateway.policy_tour import print_policy_tour
from gateway.server import Role, WorkerFactory, serve
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
) -> None:
    """Run the gateway: the HTTP API, the delivery workers, or both, until SIGTERM.

    Example: GATEWAY_DATABASE_URL=postgresql+asyncpg://gh@db/gh gateway serve --role api
    """
    settings = load_settings()
    asyncio.run(serve(settings, role, worker_factory=delivery_worker_factory()))


@app.command("demo")
def demo() -> None:
    """Show what Gatehouse decides, and what leaves, for a dozen example disclosures."""
    print_policy_tour(console())


register_partner_sim(app)  # partner simulator: gateway partner-sim


def delivery_worker_factory() -> WorkerFactory | None:
    """The delivery engine for the worker role."""
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run gateway with these arguments; returns the exit code."""
    return invoke(app, argv)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
