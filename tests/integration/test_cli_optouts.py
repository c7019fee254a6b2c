"""gateway-admin optouts import/status: keyed hashes only, bad lines named by number only."""

from __future__ import annotations

from pathlib import Path

import pytest

from agreements.nhs_number import nhs_number_valid
from gateway.cli.admin_optouts import parse_optout_lines
from gateway.protection import Protection
from gateway.store.tables import audit_log, audit_pending, optouts
from tests.integration.cli_support import admin_env, audit_entries, rows, run, run_json


def synthetic_nhs_number(serial: int) -> str:
    """A valid 999-range number (never issued to a real person)."""
    for candidate in range(serial, serial + 20):
        stem = f"999{candidate:06d}"
        total = sum(int(d) * w for d, w in zip(stem, range(10, 1, -1), strict=True))
        check = (11 - total % 11) % 11
        if check != 10:
            return stem + str(check)
    raise AssertionError("unreachable")


GOOD = [synthetic_nhs_number(n * 37) for n in range(1, 6)]


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch, sqlite_url: str, tmp_path: Path) -> Path:
    admin_env(monkeypatch, sqlite_url, tmp_path)
    return tmp_path


def test_check_digit() -> None:
    assert all(nhs_number_valid(n) for n in GOOD)
    assert nhs_number_valid("9434765919")
    assert not nhs_number_valid("9434765918")
    assert not nhs_number_valid("943476591")
    assert not nhs_number_valid("94347659190")
    assert not nhs_number_valid("943476591x")
    parsed = parse_optout_lines(["# header", "", "943 476 5919", "943-476-5919", "123", "  "])
    assert (parsed.numbers, parsed.invalid_lines) == (["9434765919", "9434765919"], [5])


def test_import_replaces_the_list_with_keyed_hashes(
    env: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "db", "upgrade")[0] == 0
    listing = env / "ndop.txt"
    listing.write_text("# national data opt-out, November\n" + "\n".join(GOOD) + "\n\n")
    code, result = run_json(capsys, "optouts", "import", str(listing), "--list-version", "2026-11",
                            "--actor", "ig.officer")  # fmt: skip
    assert code == 0
    assert (result["count"], result["list_version"], result["previous_count"]) == (5, "2026-11", 0)

    protection = Protection.from_dir(env / "keys")
    stored = rows(sqlite_url, optouts)
    assert {r["nhs_index"] for r in stored} == {
        protection.blind_index("nhs_number", n) for n in GOOD
    }
    database_text = (env / "gatehouse.db").read_bytes()
    assert not any(n.encode() in database_text for n in GOOD)

    listing.write_text(GOOD[0] + "\n")
    assert run(capsys, "optouts", "import", str(listing), "--list-version", "2026-12")[0] == 0
    assert run_json(capsys, "optouts", "status")[1] == {"list_version": "2026-12", "count": 1}
    entry = audit_entries(sqlite_url)[-1]
    assert entry["action"] == "optouts.imported"
    assert (entry["details"]["count"], entry["details"]["previous_count"]) == (1, 5)


def test_invalid_lines_are_reported_by_number_and_refused(
    env: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "db", "upgrade")[0] == 0
    bad_value = "9990000001"  # fails the check digit
    assert not nhs_number_valid(bad_value)
    listing = env / "ndop.txt"
    listing.write_text(f"{GOOD[0]}\n{bad_value}\n\n{GOOD[1]}\nnot a number\n")
    code, out, err = run(capsys, "optouts", "import", str(listing))
    assert code == 1
    assert "line 2, 5" in err
    assert "Nothing was imported" in err
    assert bad_value not in out + err
    assert "not a number" not in out + err
    assert rows(sqlite_url, optouts) == []

    code, result = run_json(capsys, "optouts", "import", str(listing), "--skip-invalid")
    assert (code, result["count"], result["skipped_lines"]) == (0, 2, [2, 5])
    audited = rows(sqlite_url, audit_log) + rows(sqlite_url, audit_pending)
    assert bad_value not in str(audited)
    assert GOOD[0] not in str(audited)


def test_empty_and_unreadable_files_are_refused(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "db", "upgrade")[0] == 0
    empty = env / "empty.txt"
    empty.write_text("# nothing yet\n")
    code, _, err = run(capsys, "optouts", "import", str(empty))
    assert code == 1
    assert "--allow-empty" in err
    assert run_json(capsys, "optouts", "import", str(empty), "--allow-empty")[1]["count"] == 0
    code, _, err = run(capsys, "optouts", "import", str(env / "missing.txt"))
    assert code == 1
    assert "cannot read" in err
    binary = env / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00")
    assert run(capsys, "optouts", "import", str(binary))[0] == 1
