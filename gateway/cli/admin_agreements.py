"""`gateway-admin agreements ...`: information sharing agreements (validate, for now)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agreements.loader import validate_paths
from gateway.cli.common import EXIT_REFUSED, console, print_json, print_table

agreements_app = typer.Typer(
    name="agreements",
    help="Information sharing agreements: validate a catalog before it is loaded.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="One JSON document for scripts.")]
Paths = Annotated[
    list[Path],
    typer.Argument(help="Catalog directories (with partners.yaml) or agreement YAML files."),
]


@agreements_app.command("validate")
def validate(paths: Paths, json_output: JsonFlag = False) -> None:
    """Report every problem in every file; exit non-zero if there is any."""
    problems = validate_paths(paths)
    if json_output:
        print_json(
            {
                "valid": not problems,
                "paths": [str(path) for path in paths],
                "problems": [problem.to_dict() for problem in problems],
            }
        )
    elif problems:
        print_table(
            f"{len(problems)} problem(s)",
            ("file", "field", "rule", "message"),
            [(p.file, p.field, p.rule, p.message) for p in problems],
        )
    else:
        console().print(f"valid: {', '.join(str(path) for path in paths)}", highlight=False)
    if problems:
        raise typer.Exit(EXIT_REFUSED)
