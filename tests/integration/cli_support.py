"""Helpers for the gateway-admin tests: run a command as a function, read what it wrote."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Table, select

from agreements.loader import default_catalog_dir
from gateway.cli.admin import main
from gateway.store.database import Store
from gateway.store.tables import audit_log, audit_pending


def admin_env(monkeypatch: pytest.MonkeyPatch, url: str, tmp_path: Path) -> Path:
    """Point gateway-admin at this database and a per-test keys directory; return a catalog copy."""
    monkeypatch.setenv("GATEWAY_DATABASE_URL", url)
    monkeypatch.setenv("GATEWAY_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("COLUMNS", "200")  # rich tables as wide as a maximised terminal
    catalog = tmp_path / "catalog"
    shutil.copytree(default_catalog_dir(), catalog)
    return catalog


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run gateway-admin; (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    """Run gateway-admin with --json; (exit code, parsed stdout)."""
    code, out, err = run(capsys, *argv, "--json")
    assert "Traceback" not in err
    return code, json.loads(out)


def rows(url: str, table: Table) -> list[dict[str, Any]]:
    """Every row of a table, as dicts."""

    async def work() -> list[dict[str, Any]]:
        store = await Store.open(url)
        try:
            async with store.read() as conn:
                return [dict(r._mapping) for r in await conn.execute(select(table))]
        finally:
            await store.close()

    return asyncio.run(work())


def audit_entries(url: str) -> list[dict[str, Any]]:
    """Every audit entry (chained or still pending), oldest first, details parsed."""
    entries = sorted(rows(url, audit_log), key=lambda r: r["seq"]) + rows(url, audit_pending)
    for entry in entries:
        entry["targets"] = json.loads(entry["targets"])
        entry["details"] = json.loads(entry["details"])
    return entries


def edit(path: Path, *replacements: tuple[str, str]) -> None:
    """Change a catalog file in place; each old text must be present exactly once."""
    text = path.read_text()
    for old, new in replacements:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    path.write_text(text)


def applied_catalog(monkeypatch: pytest.MonkeyPatch, url: str, tmp_path: Path) -> Path:
    """A migrated database with the example catalog applied; returns the catalog copy."""
    catalog = admin_env(monkeypatch, url, tmp_path)
    assert main(["db", "upgrade"]) == 0
    assert main(["catalog", "apply", str(catalog), "--json"]) == 0
    return catalog
