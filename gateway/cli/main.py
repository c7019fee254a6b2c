"""`gateway`: run the service, the demo and the partner simulator."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from gateway.cli.common import console, invoke
from gateway.partner_sim.cli import register as register_partner_sim
from gateway.policy_tour import print_policy_tour

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


@app.command("demo")
def demo() -> None:
    """Show what Gatehouse decides, and what leaves, for a dozen example disclosures."""
    print_policy_tour(console())


register_partner_sim(app)  # partner simulator: gateway partner-sim


def main(argv: Sequence[str] | None = None) -> int:
    """Run gateway with these arguments; returns the exit code."""
    return invoke(app, argv)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
