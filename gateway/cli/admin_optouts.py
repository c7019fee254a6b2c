"""`gateway-admin optouts ...`: the national data opt-out list, held as keyed hashes only.

The file is one NHS number per line (blank lines and `#` comments ignored). A number is never
printed, logged or stored: a bad line is reported by its line number, and each good number is
replaced by its blind index (HMAC under the gateway's own key) before it reaches the database.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress

from agreements.nhs_number import nhs_number_valid
from gateway.application.optout_list import (
    OptOutListImport,
    OptOutListStatus,
    import_optout_list,
    optout_list_status,
)
from gateway.cli.common import EXIT_REFUSED, fail, print_json, print_table
from gateway.cli.context import ActorOption, AdminContext, JsonFlag, run_async

optouts_app = typer.Typer(
    name="optouts",
    help="The national data opt-out list: import a new list, see which list is loaded.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_SEPARATORS = re.compile(r"[\s-]")
SHOWN_LINES = 20  # line numbers listed for people; --json lists up to MAX_LISTED
MAX_LISTED = 1000


@dataclass(frozen=True, slots=True)
class OptOutFile:
    """The valid numbers of an opt-out file, and the line numbers that were not valid."""

    numbers: list[str]
    invalid_lines: list[int]


def parse_optout_lines(lines: Iterable[str]) -> OptOutFile:
    """Read an opt-out file: spaces and hyphens inside a number are allowed, nothing else."""
    numbers, invalid = [], []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        digits = _SEPARATORS.sub("", text)
        if nhs_number_valid(digits):
            numbers.append(digits)
        else:
            invalid.append(number)
    return OptOutFile(numbers, invalid)


def _read(path: Path) -> OptOutFile:
    try:
        with path.open(encoding="utf-8") as handle:
            return parse_optout_lines(handle)
    except UnicodeDecodeError:
        raise fail(f"{path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise fail(f"{path}: cannot read ({exc.strerror or type(exc).__name__})") from None


@optouts_app.command(
    "import",
    epilog="Example: gateway-admin optouts import ndop-2026-11.txt --list-version 2026-11",
)
def import_command(
    file: Annotated[Path, typer.Argument(help="One NHS number per line.")],
    *,
    list_version: Annotated[
        str | None,
        typer.Option("--list-version", help="The list's version (default: the import time)."),
    ] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Import the valid lines even if some are not.")
    ] = False,
    allow_empty: Annotated[
        bool, typer.Option("--allow-empty", help="Accept a list with no numbers (clears it).")
    ] = False,
    actor: ActorOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Replace the opt-out list with this file's NHS numbers (stored as keyed hashes only)."""
    parsed = _read(file)
    if parsed.invalid_lines and not skip_invalid:
        _report_invalid(parsed.invalid_lines, json_output)
        raise typer.Exit(EXIT_REFUSED)
    if not parsed.numbers and not allow_empty:
        raise fail(f"{file}: no NHS numbers found; use --allow-empty to clear the list")
    if list_version is not None and not 0 < len(list_version) <= 60:
        raise fail("--list-version must be 1 to 60 characters")

    async def work(ctx: AdminContext) -> OptOutListImport:
        with _progress_bar(len(parsed.numbers)) as progress:
            return await import_optout_list(
                ctx.store,
                parsed.numbers,
                protection=ctx.protection(),
                list_version=list_version,
                invalid_lines=len(parsed.invalid_lines),
                actor=ctx.actor,
                at=ctx.now,
                progress=progress,
            )

    result = run_async(work, actor=actor)
    if json_output:
        print_json({**asdict(result), "skipped_lines": parsed.invalid_lines[:MAX_LISTED]})
        return
    typer.echo(
        f"opt-out list {result.list_version} loaded: {result.count} NHS number(s) "
        f"(replacing {result.previous_version or 'no list'}, {result.previous_count})"
    )
    if parsed.invalid_lines:
        typer.echo(f"skipped {len(parsed.invalid_lines)} invalid line(s): " + _lines(parsed))


def _lines(parsed: OptOutFile) -> str:
    shown = ", ".join(str(n) for n in parsed.invalid_lines[:SHOWN_LINES])
    more = len(parsed.invalid_lines) - SHOWN_LINES
    return shown + (f" and {more} more" if more > 0 else "")


def _report_invalid(lines: list[int], json_output: bool) -> None:
    if json_output:
        print_json(
            {"imported": False, "invalid_lines": lines[:MAX_LISTED], "invalid_count": len(lines)}
        )
    shown = ", ".join(str(n) for n in lines[:SHOWN_LINES])
    more = len(lines) - SHOWN_LINES
    Console(stderr=True).print(
        f"error: {len(lines)} line(s) are not valid NHS numbers (10 digits with a valid check "
        f"digit): line {shown}{f' and {more} more' if more > 0 else ''}. Nothing was imported; "
        "fix them or use --skip-invalid",
        highlight=False,
        markup=False,
    )


@contextmanager
def _progress_bar(total: int) -> Iterator[Callable[[int], None]]:
    """A progress bar for hashing long lists, at a terminal only."""
    err = Console(stderr=True)
    with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("hashing NHS numbers", total=total)
        yield lambda done: progress.update(task, completed=done)


@optouts_app.command("status", epilog="Example: gateway-admin optouts status --json")
def status(json_output: JsonFlag = False) -> None:
    """Which opt-out list is loaded, and how many numbers it holds."""

    async def work(ctx: AdminContext) -> OptOutListStatus:
        return await optout_list_status(ctx.store)

    loaded = run_async(work)
    if json_output:
        print_json(asdict(loaded))
    else:
        rows = [(loaded.list_version, loaded.count)]
        print_table("national data opt-out", ("list version", "NHS numbers"), rows)
