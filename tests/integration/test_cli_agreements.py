"""gateway-admin agreements list/show/diff/suspend/resume/terminate/due, and their refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.cli_support import applied_catalog, audit_entries, run, run_json

LAC = "KM-NHS-LAC-001"


@pytest.fixture(autouse=True)
def catalog(monkeypatch: pytest.MonkeyPatch, sqlite_url: str, tmp_path: Path) -> Path:
    return applied_catalog(monkeypatch, sqlite_url, tmp_path)


def test_list_filters_by_status_and_partner(capsys: pytest.CaptureFixture[str]) -> None:
    code, police = run_json(capsys, "agreements", "list", "--partner", "kent-police")
    assert code == 0
    assert {a["id"] for a in police} == {"KM-POL-S2-011", "KM-POL-SG-018"}
    suspended = run_json(capsys, "agreements", "list", "--status", "suspended")[1]
    assert [a["id"] for a in suspended] == ["EXAMPLE-SUSPENDED-001"]
    code, out, _ = run(capsys, "agreements", "list")
    assert code == 0
    assert LAC in out
    code, _, err = run(capsys, "agreements", "list", "--status", "paused")
    assert code == 2
    assert "Traceback" not in err


def test_show_gives_the_document_and_versions(capsys: pytest.CaptureFixture[str]) -> None:
    code, shown = run_json(capsys, "agreements", "show", LAC)
    assert code == 0
    assert (shown["version"], shown["versions"], shown["partner"]) == (3, [3], "medway-ft")
    assert shown["document"]["purposes"] == ["looked_after_children_health"]
    assert len(shown["content_hash"]) == 64
    code, out, _ = run(capsys, "agreements", "show", LAC)
    assert code == 0
    assert "health.diagnoses[*].code" in out
    assert "postcode_district" in out


@pytest.mark.parametrize(
    "argv",
    [
        ("agreements", "show", "NO-SUCH-AGREEMENT"),
        ("agreements", "show", LAC, "--version", "9"),
        ("agreements", "diff", LAC, "3", "4"),
        ("agreements", "suspend", "NO-SUCH-AGREEMENT", "--reason", "x"),
    ],
)
def test_unknown_agreement_or_version_is_refused_in_one_line(
    argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = run(capsys, *argv)
    assert code == 1
    assert err.startswith("error:")
    assert len(err.strip().splitlines()) <= 2
    assert "Traceback" not in err


def test_diff_of_a_version_with_itself_is_empty(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_json(capsys, "agreements", "diff", LAC, "3", "3") == (
        0, {"id": LAC, "from": 3, "to": 3, "changes": []},
    )  # fmt: skip


def test_status_changes_follow_the_lifecycle(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "agreements", "resume", LAC, "--reason", "x")[0] == 1  # active already
    assert run(capsys, "agreements", "suspend", LAC, "--reason", "breach")[0] == 0
    code, _, err = run(capsys, "agreements", "suspend", LAC, "--reason", "again")
    assert code == 1
    assert "cannot suspend" in err
    code, done = run_json(capsys, "agreements", "terminate", LAC, "--reason", "ended", "--yes")
    assert (code, done["from"], done["to"]) == (0, "suspended", "terminated")
    assert run(capsys, "agreements", "resume", LAC, "--reason", "x")[0] == 1
    assert run(capsys, "agreements", "terminate", "KM-GP-005", "--reason", "x")[0] == 2  # no --yes


@pytest.mark.parametrize("reason", ["", "   ", "x" * 201, "two\nlines"])
def test_a_reason_is_one_short_line(reason: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "agreements", "suspend", LAC, "--reason", reason)[0] == 2
    assert run_json(capsys, "agreements", "show", LAC)[1]["status"] == "active"


def test_due_reports_dates_in_the_window_and_missing_keys(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, due = run_json(capsys, "agreements", "due", "--days", "30", "--as-of", "2027-03-15")
    assert code == 0
    items = {(i["kind"], i["subject"]): i for i in due["items"]}
    assert items[("review_due", LAC)]["days_left"] == 17
    assert items[("review_due", "KM-GP-005")]["overdue"] is True
    assert ("effective_to", "EXAMPLE-EXPIRED-001") not in items  # expired: nothing to act on
    assert ("partner_key_missing", "kent-police") in items
    assert due["days"] == 30
    assert run(capsys, "agreements", "due", "--as-of", "31/03/2027")[0] == 2
    assert run(capsys, "agreements", "due", "--days", "-1")[0] == 2
    code, out, _ = run(capsys, "agreements", "due")
    assert code == 0
    assert "partner_key_missing" in out
    # Reading changes nothing and audits nothing.
    assert not [e for e in audit_entries(sqlite_url) if e["action"].startswith("agreement.s")]


def test_due_check_exits_3_when_something_needs_action(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, due = run_json(capsys, "agreements", "due", "--check", "--as-of", "2027-03-15")
    assert code == 3
    assert due["items"]  # the report is still printed in full
    code, out, _ = run(capsys, "agreements", "due", "--check", "--as-of", "2027-03-15")
    assert code == 3
    assert "review_due" in out
    assert run(capsys, "agreements", "due", "--as-of", "2027-03-15")[0] == 0  # not asked to check
