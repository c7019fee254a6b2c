"""The chaos cases' table: accepted / receipted / failed / stuck / duplicates per case."""

from __future__ import annotations

import pytest

from tests.chaos.rig import TABLE

COLUMNS = ("case", "accepted", "receipted", "failed", "stuck", "duplicates", "http_500", "at")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print one row per chaos case run, passed or not."""
    if not TABLE:
        return
    terminalreporter.section("chaos cases")
    widths = [max(len(c), *(len(str(row[c])) for row in TABLE)) for c in COLUMNS]
    terminalreporter.write_line("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)))
    for row in TABLE:
        cells = (str(row[c]).ljust(w) for c, w in zip(COLUMNS, widths, strict=True))
        terminalreporter.write_line("  ".join(cells))
