"""The shared CLI runner: exit codes 0 ok, 1 refused, 2 usage; never a traceback."""

from __future__ import annotations

import pytest

from gateway.cli.admin import main as admin_main
from gateway.cli.main import main as gateway_main


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert admin_main(["no-such-command"]) == 2
    assert "No such command" in capsys.readouterr().err


def test_missing_argument_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert admin_main(["agreements", "validate"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert gateway_main(["--help"]) == 0
    assert "demo" in capsys.readouterr().out
