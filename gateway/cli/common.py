"""What every command line shares: exit codes, tables for people, JSON for scripts."""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from gateway.errors import GatewayError

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_ATTENTION = 3  # a report (`agreements due --check`) found something to act on
PRIVATE_UMASK = 0o077  # the database, its -wal/-shm, keys, anchors: readable by their owner only


def console() -> Console:
    """A console on stdout; plain when not a terminal."""
    return Console(soft_wrap=True)


def default_actor() -> str:
    """The OS user, recorded as the actor of admin changes unless --actor says otherwise."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def print_json(data: Any) -> None:
    """Machine-readable output for scripts: one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A rich table for people."""
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console().print(table)


def fail(message: str, code: int = EXIT_REFUSED) -> typer.Exit:
    """Print one clear line to stderr and return the Exit to raise."""
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def invoke(app: typer.Typer, argv: Sequence[str] | None) -> int:
    """Run a Typer app as a function: returns the exit code, never raises for user mistakes."""
    command = typer.main.get_command(app)
    try:
        result = command.main(
            args=list(argv) if argv is not None else None,
            prog_name=app.info.name,
            standalone_mode=False,
        )
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        Console(stderr=True, soft_wrap=True).print("aborted")
        return EXIT_REFUSED
    except typer.TyperException as exc:
        # typer >= 0.29 vendors click: its ClickException (usage errors included) derives from
        # TyperException and carries `show()` and `exit_code` (2 for usage errors).
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            Console(stderr=True, soft_wrap=True).print(f"error: {exc}", highlight=False)
        return int(getattr(exc, "exit_code", EXIT_USAGE))
    except GatewayError as exc:
        Console(stderr=True, soft_wrap=True).print(
            f"[bold red]error:[/] {exc.message}", highlight=False
        )
        return EXIT_REFUSED
    return int(result) if isinstance(result, int) else EXIT_OK


Runner = Callable[[Sequence[str] | None], int]
