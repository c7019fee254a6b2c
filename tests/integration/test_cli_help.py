"""Every gateway-admin command of the agreement, partner, key, client, opt-out, disclosure and
subject groups has --help with an example, and every listing takes --json."""

from __future__ import annotations

from typing import Any

import pytest
import typer

from gateway.cli.admin import app, main

GROUPS = (
    "agreements",
    "catalog",
    "partners",
    "keys",
    "clients",
    "optouts",
    "disclosures",
    "subject",
)
LISTINGS = {"list", "show", "due", "status", "diff"}


def leaves(group: Any, path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    if hasattr(group, "commands"):  # a group (typer vendors its own click classes)
        found = []
        for name, command in group.commands.items():
            found += leaves(command, (*path, name))
        return found
    return [(path, group)]


COMMANDS = [
    item
    for name in GROUPS
    for item in leaves(typer.main.get_command(app).commands[name], (name,))  # type: ignore[attr-defined]
]


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_has_an_example(
    path: tuple[str, ...], command: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*path, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Example: gateway-admin " + " ".join(path) in " ".join(out.split())
    if path[-1] in LISTINGS:
        assert any(p.name == "json_output" for p in command.params)
