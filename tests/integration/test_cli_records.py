"""gateway-admin ropa and agreements register on the example catalog, in every format."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from agreements.loader import default_catalog_dir, load_catalog
from tests.integration.cli_support import applied_catalog, run, run_json

CATALOG = load_catalog(default_catalog_dir())


@pytest.fixture(autouse=True)
def catalog(monkeypatch: pytest.MonkeyPatch, sqlite_url: str, tmp_path: Path) -> Path:
    return applied_catalog(monkeypatch, sqlite_url, tmp_path)


def test_the_register_lists_every_agreement_with_its_governance_facts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, lines = run_json(capsys, "agreements", "register")
    assert code == 0
    assert {line["agreement"] for line in lines} == set(CATALOG.agreements)
    bexley = next(line for line in lines if line["agreement"] == "KM-LA-PLC-010")
    assert bexley["partner_name"] == CATALOG.partners["bexley-lb"].name
    assert bexley["dpia"] == "DPIA-2025-022"
    assert bexley["sign_off"] == [
        "Corporate Information Governance Group: Example SIRO "
        "(Senior Information Risk Owner), 2025-12-04"
    ]
    assert "public tasks" in bexley["lawful_basis"]
    code, out, _ = run(capsys, "agreements", "register", "--csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == len(CATALOG.agreements)
    assert {r["agreement"]: r["dpia"] for r in rows}["KM-LA-PLC-010"] == "DPIA-2025-022"
    code, out, _ = run(capsys, "agreements", "register")
    assert code == 0
    assert f"{len(CATALOG.agreements)} agreement(s)" in out


def test_ropa_describes_each_agreement_in_force_in_every_format(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "ropa", "--format", "json")
    assert code == 0
    document = json.loads(out)
    entries = {e["agreement"]: e for e in document["agreements"]}
    in_force = {a.id for a in CATALOG.agreements.values() if a.status in {"active", "suspended"}}
    assert set(entries) == in_force
    police = entries["KM-POL-S2-011"]
    assert police["exemption"] == "sch2_p2"
    assert police["criminal_offence"] or police["special_category"]
    assert police["dpia"]
    assert police["disclosed"] == 0
    assert any("approved by a named officer" in s for s in police["safeguards"])
    assert "children and young people" in entries["KM-LA-PLC-010"]["data_subjects"]
    assert entries["KM-LA-PLC-010"]["retention"] == "75 years after each disclosure"

    code, out, _ = run(capsys, "ropa", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["agreement"] for r in rows} == in_force
    code, out, _ = run(capsys, "ropa", "--from", "2026-01-01", "--to", "2026-06-30")
    assert code == 0
    assert out.startswith("# Record of processing: data sharing")
    assert "Disclosures counted from 2026-01-01 to 2026-06-30." in out
    assert "## KM-LA-PLC-010 v2:" in out
    code, _, err = run(capsys, "ropa", "--from", "2026-02-01", "--to", "2026-01-01")
    assert code == 2
    assert "--to is before --from" in err
