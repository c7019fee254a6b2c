"""`gateway-admin`: the information governance team's and the on-call engineer's tool."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from gateway.cli.common import invoke

app = typer.Typer(
    name="gateway-admin",
    help="Administer Gatehouse: agreements, partners, keys, clients, approvals, audit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Administer Gatehouse: agreements, partners, keys, clients, approvals, audit."""


# Each area registers its own commands; keep one line per area, in this order.
# (registrations are added by the modules below as they are built)


def main(argv: Sequence[str] | None = None) -> int:
    """Run gateway-admin with these arguments; returns the exit code."""
    return invoke(app, argv)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
