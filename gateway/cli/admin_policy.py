"""`gateway-admin dictionary`: the data dictionary every agreement's field rules refer to."""

from __future__ import annotations

from typing import Annotated

import typer

from agreements.dictionary import entries
from gateway.cli.common import print_json, print_table

JsonFlag = Annotated[bool, typer.Option("--json", help="One JSON document for scripts.")]


LEGEND = "flags: A9 special category, A10 criminal offence, 3P third party, FT free text"


def _flags(special: bool, criminal: bool, third_party: bool, free_text: bool) -> str:
    names = ("A9", "A10", "3P", "FT")
    on = (special, criminal, third_party, free_text)
    return " ".join(name for name, flag in zip(names, on, strict=True) if flag)


def dictionary_command(json_output: JsonFlag = False) -> None:
    """Print every field path a record may carry, its category and what makes it sensitive."""
    definitions = entries()
    if json_output:
        print_json([definition.to_dict() for definition in definitions])
        return
    rows = [
        (
            d.path,
            d.category,
            d.type,
            _flags(d.special_category, d.criminal_offence, d.third_party, d.free_text),
            d.description,
        )
        for d in definitions
    ]
    print_table(
        f"Data dictionary ({len(rows)} field paths; {LEGEND})",
        ("path", "category", "type", "flags", "description"),
        rows,
    )
