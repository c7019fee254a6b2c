"""gateway-admin catalog apply, and the IG journey end to end (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.store.tables import agreements, partners
from tests.integration.cli_support import admin_env, audit_entries, edit, rows, run, run_json

LAC = "KM-NHS-LAC-001"
LAC_FILE = Path("children/lac-health.yaml")
LAC_V4 = (
    ("version: 3\n", "version: 4\n"),
    ("review_due: 2027-04-01", "review_due: 2027-10-01"),
    ("  - path: identity.date_of_birth\n",
     "  - path: identity.date_of_birth\n    transform: year_only\n"),
    ("  - path: education.sen_primary_need\n", ""),
)  # fmt: skip


@pytest.fixture
def catalog(monkeypatch: pytest.MonkeyPatch, sqlite_url: str, tmp_path: Path) -> Path:
    return admin_env(monkeypatch, sqlite_url, tmp_path)


def by_id(items: list[dict], key: str = "id") -> dict[str, dict]:  # type: ignore[type-arg]
    return {item[key]: item for item in items}


def test_ig_journey(
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    catalog = admin_env(monkeypatch, database_url, tmp_path)
    assert run(capsys, "db", "upgrade")[0] == 0

    code, plan = run_json(capsys, "catalog", "apply", str(catalog), "--dry-run")
    assert (code, plan["ok"], plan["applied"], plan["changed"]) == (0, True, False, True)
    assert {a["kind"] for a in plan["agreements"]} == {"new_agreement"}
    assert run_json(capsys, "agreements", "list")[1] == []

    code, plan = run_json(capsys, "catalog", "apply", str(catalog), "--actor", "ig.officer")
    assert (code, plan["applied"]) == (0, True)
    code, listed = run_json(capsys, "agreements", "list", "--status", "active")
    assert code == 0
    assert by_id(listed)[LAC]["version"] == 3
    assert all(a["status"] == "active" for a in listed)
    assert len(by_id(listed)) == len(listed) >= 15

    edit(catalog / LAC_FILE, *LAC_V4)
    code, plan = run_json(capsys, "catalog", "apply", str(catalog), "--dry-run")
    assert code == 0
    lac = by_id(plan["agreements"])[LAC]
    assert (lac["kind"], lac["stored_version"], lac["version"]) == ("new_version", 3, 4)
    expected = [
        {"field": "review_due", "change": "changed", "before": "2027-04-01", "after": "2027-10-01"},
        {"field": "fields[identity.date_of_birth].transform", "change": "changed",
         "before": "keep", "after": "year_only"},
        {"field": "fields[education.sen_primary_need]", "change": "removed",
         "before": {"purposes": ["(all)"], "transform": "keep"}, "after": None},
    ]  # fmt: skip
    assert lac["changes"] == expected
    others = [a["kind"] for a in plan["agreements"] if a["id"] != LAC]
    assert set(others) == {"unchanged"}
    assert by_id(run_json(capsys, "agreements", "list")[1])[LAC]["version"] == 3

    code, out, _ = run(capsys, "catalog", "apply", str(catalog), "--actor", "ig.officer")
    assert code == 0
    assert "v3 -> v4" in out
    assert "year_only" in out
    code, diff = run_json(capsys, "agreements", "diff", LAC, "3", "4")
    assert (code, diff["changes"]) == (0, expected)

    code, done = run_json(capsys, "agreements", "suspend", LAC, "--reason", "partner breach",
                          "--actor", "ig.officer")  # fmt: skip
    assert (code, done["from"], done["to"], done["version"]) == (0, "active", "suspended", 4)
    suspended = run_json(capsys, "agreements", "list", "--status", "suspended")[1]
    assert [a["id"] for a in suspended if a["partner"] == "medway-ft"] == [LAC]

    code, due = run_json(capsys, "agreements", "due", "--days", "30", "--as-of", "2027-09-15")
    assert code == 0
    items = {(i["kind"], i["subject"]): i for i in due["items"]}
    review = items[("review_due", LAC)]
    assert (review["days_left"], review["status"], review["overdue"]) == (16, "suspended", False)
    assert items[("partner_key_missing", "medway-ft")]["overdue"] is True

    code, done = run_json(capsys, "agreements", "resume", LAC, "--reason", "investigation closed",
                          "--actor", "ig.officer")  # fmt: skip
    assert (code, done["to"]) == (0, "active")
    assert by_id(run_json(capsys, "agreements", "list")[1])[LAC]["status"] == "active"

    entries = audit_entries(database_url)
    actions = [(e["action"], e["targets"].get("agreement")) for e in entries]
    assert ("agreement.applied", LAC) in actions
    assert actions[-2:] == [("agreement.suspended", LAC), ("agreement.resumed", LAC)]
    assert {e["actor_name"] for e in entries} == {"ig.officer"}
    applied_v4 = [e for e in entries if e["action"] == "agreement.applied"][-1]["details"]
    assert (applied_v4["version"], applied_v4["previous_version"]) == (4, 3)
    assert "review_due" in applied_v4["changed_fields"]
    assert entries[-1]["details"]["reason"] == "investigation closed"
    assert run_json(capsys, "audit", "verify")[1]["ok"] is True


def test_apply_twice_is_unchanged_and_keeps_a_suspension(
    catalog: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "db", "upgrade")[0] == 0
    assert run(capsys, "catalog", "apply", str(catalog))[0] == 0
    assert run(capsys, "agreements", "suspend", LAC, "--reason", "breach")[0] == 0
    code, plan = run_json(capsys, "catalog", "apply", str(catalog))
    assert (code, plan["changed"], plan["applied"]) == (0, False, False)
    assert by_id(plan["agreements"])[LAC]["stored_status"] == "suspended"
    assert by_id(run_json(capsys, "agreements", "list")[1])[LAC]["status"] == "suspended"
    assert len(rows(sqlite_url, agreements)) == len(plan["agreements"])

    edit(catalog / LAC_FILE, *LAC_V4)
    code, plan = run_json(capsys, "catalog", "apply", str(catalog), "--dry-run")
    assert code == 0
    assert by_id(plan["agreements"])[LAC]["warnings"] == ["v3 is suspended now; v4 will be active"]


def test_content_change_without_new_version_is_refused_and_nothing_applies(
    catalog: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "db", "upgrade")[0] == 0
    assert run(capsys, "catalog", "apply", str(catalog))[0] == 0
    before = rows(sqlite_url, agreements), rows(sqlite_url, partners)
    edit(catalog / LAC_FILE, ("review_due: 2027-04-01", "review_due: 2027-05-01"))
    edit(catalog / "partners.yaml", ("name: NHS Kent and Medway Integrated Care Board",
                                     "name: NHS Kent and Medway ICB"))  # fmt: skip
    code, plan = run_json(capsys, "catalog", "apply", str(catalog))
    assert (code, plan["ok"], plan["applied"]) == (1, False, False)
    assert [(r["agreement"], r["code"]) for r in plan["refusals"]] == [
        (LAC, "agreement_changed_without_new_version")
    ]
    assert by_id(plan["partners"])["km-icb"]["kind"] == "updated"
    assert (rows(sqlite_url, agreements), rows(sqlite_url, partners)) == before

    code, out, err = run(capsys, "catalog", "apply", str(catalog))
    assert code == 1
    assert "agreement_changed_without_new_version" in out
    assert "nothing applied" in out
    assert "Traceback" not in err


def test_a_changed_partner_contact_is_updated_and_kept_out_of_the_audit(
    monkeypatch: pytest.MonkeyPatch,
    database_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    catalog = admin_env(monkeypatch, database_url, tmp_path)
    assert run(capsys, "db", "upgrade")[0] == 0
    assert run(capsys, "catalog", "apply", str(catalog))[0] == 0
    stored = by_id(rows(database_url, partners))["kmmh"]
    assert (stored["ods_code"], stored["dpo_contact"]) == ("RXY", "dpo@kmmh.example")

    edit(catalog / "partners.yaml", ("dpo_contact: dpo@kmmh.example",
                                     "dpo_contact: data.protection@kmmh.example"))  # fmt: skip
    code, plan = run_json(capsys, "catalog", "apply", str(catalog), "--dry-run")
    assert (code, plan["changed"]) == (0, True)
    assert by_id(plan["partners"])["kmmh"] == {
        "id": "kmmh",
        "kind": "updated",
        "changes": [{"field": "dpo_contact", "change": "changed", "before": "dpo@kmmh.example",
                     "after": "data.protection@kmmh.example"}],
    }  # fmt: skip
    assert {p["kind"] for p in plan["partners"] if p["id"] != "kmmh"} == {"unchanged"}
    assert by_id(rows(database_url, partners))["kmmh"]["dpo_contact"] == "dpo@kmmh.example"

    code, out, _ = run(capsys, "catalog", "apply", str(catalog), "--actor", "ig.officer")
    assert code == 0
    assert "1 partner(s) new or updated" in out
    assert "data.protection@kmmh.example" not in out  # the people's view names the field only
    assert by_id(rows(database_url, partners))["kmmh"]["dpo_contact"] == (
        "data.protection@kmmh.example"
    )
    assert run_json(capsys, "partners", "show", "kmmh")[1]["dpo_contact"] == (
        "data.protection@kmmh.example"
    )
    assert run_json(capsys, "catalog", "apply", str(catalog))[1]["changed"] is False

    saved = [e for e in audit_entries(database_url) if e["action"] == "partner.saved"]
    assert [(e["targets"], e["details"]) for e in saved[-1:]] == [
        (
            {"partner": "kmmh"},
            {"change": "updated", "channel": "webhook", "changed_fields": ["dpo_contact"],
             "changed_fields_total": 1},
        )
    ]  # fmt: skip
    audited = repr([(e["targets"], e["details"]) for e in audit_entries(database_url)])
    assert "@" not in audited  # no contact, old or new, in any audit entry


def test_lowered_version_is_refused(catalog: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "db", "upgrade")[0] == 0
    assert run(capsys, "catalog", "apply", str(catalog))[0] == 0
    edit(catalog / LAC_FILE, ("version: 3\n", "version: 2\n"))
    code, plan = run_json(capsys, "catalog", "apply", str(catalog), "--dry-run")
    assert code == 1
    assert plan["refusals"][0]["code"] == "agreement_version_lowered"


def test_terminated_agreement_takes_no_new_version(
    catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "db", "upgrade")[0] == 0
    assert run(capsys, "catalog", "apply", str(catalog))[0] == 0
    assert run(capsys, "agreements", "terminate", LAC, "--reason", "ended", "--yes")[0] == 0
    edit(catalog / LAC_FILE, *LAC_V4)
    code, plan = run_json(capsys, "catalog", "apply", str(catalog))
    assert code == 1
    assert plan["refusals"][0]["code"] == "agreement_terminated"


def test_invalid_catalog_is_refused_with_every_problem(
    catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "db", "upgrade")[0] == 0
    edit(catalog / LAC_FILE, ("tier: purpose", "tier: purpose: [oops"))
    edit(catalog / "adults/mental-health.yaml", ("partner: kmmh", "partner: nobody"))
    code, result = run_json(capsys, "catalog", "apply", str(catalog))
    assert (code, result["applied"]) == (1, False)
    rules = {(Path(p["file"]).name, p["rule"]) for p in result["problems"]}
    assert {("lac-health.yaml", "yaml_invalid"), ("mental-health.yaml", "unknown_partner")} <= rules
    assert run_json(capsys, "agreements", "list")[1] == []

    code, _, err = run(capsys, "catalog", "apply", str(catalog / "no-such-dir"))
    assert code == 1
    assert "Traceback" not in err


def test_commands_refuse_a_database_not_at_the_current_schema(
    catalog: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "catalog", "apply", str(catalog))
    assert code == 1
    assert "gateway-admin db upgrade" in err
    assert run(capsys, "agreements", "list")[0] == 1
