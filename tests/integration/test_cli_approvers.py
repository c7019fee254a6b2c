"""gateway-admin approvers add/list/remove: who may decide held disclosures, audited."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.store.tables import approvers
from tests.integration.cli_support import applied_catalog, audit_entries, rows, run, run_json


@pytest.fixture(autouse=True)
def catalog(monkeypatch: pytest.MonkeyPatch, sqlite_url: str, tmp_path: Path) -> Path:
    return applied_catalog(monkeypatch, sqlite_url, tmp_path)


def test_add_list_remove(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, added = run_json(capsys, "approvers", "add", " CG-0001 ", "--agreements",
                           "KM-POL-S2-011, KM-DWP-FR-012", "--role", "caldicott_guardian",
                           "--actor", "ig.lead")  # fmt: skip
    assert code == 0
    assert (added["name"], added["role"], added["added_by"]) == (
        "CG-0001",
        "caldicott_guardian",
        "ig.lead",
    )
    assert added["agreements"] == ["KM-DWP-FR-012", "KM-POL-S2-011"]
    [stored] = rows(sqlite_url, approvers)
    assert (stored["name_key"], stored["name"]) == ("cg-0001", "CG-0001")

    code, listed = run_json(capsys, "approvers", "list")
    assert (code, [a["name"] for a in listed]) == (0, ["CG-0001"])
    code, out, _ = run(capsys, "approvers", "list")
    assert code == 0
    assert "caldicott_guardian" in out

    code, _, err = run(capsys, "approvers", "add", "cg-0001", "--agreements", "KM-POL-S2-011")
    assert code == 1
    assert "is registered" in err

    code, removed = run_json(capsys, "approvers", "remove", "Cg-0001")
    assert (code, removed) == (0, {"name": "CG-0001", "status": "removed"})
    assert rows(sqlite_url, approvers) == []
    code, _, err = run(capsys, "approvers", "remove", "cg-0001")
    assert code == 1
    assert "no approver" in err

    entries = [e for e in audit_entries(sqlite_url) if e["action"].startswith("approver.")]
    assert [(e["action"], e["actor_name"], e["targets"]) for e in entries] == [
        ("approver.added", "ig.lead", {"approver": "CG-0001"}),
        ("approver.removed", entries[1]["actor_name"], {"approver": "CG-0001"}),
    ]
    assert entries[0]["details"]["role"] == "caldicott_guardian"


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["   ", "--agreements", "KM-POL-S2-011"], 2, "staff identifier"),
        (["cg-1", "--agreements", " , "], 2, "at least one agreement"),
        (["cg-1", "--agreements", "KM-POL-S2-011", "--role", "siro"], 2, "--role"),
        (["cg-1", "--agreements", "NO-SUCH-9"], 1, "no agreement"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    got, _, err = run(capsys, "approvers", "add", *argv)
    assert (got, message in err) == (code, True), err
    assert "Traceback" not in err
    assert rows(sqlite_url, approvers) == []
