"""`gateway-admin dictionary`, `gateway-admin agreements validate` and `gateway demo`, called."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from agreements.dictionary import DICTIONARY
from agreements.loader import default_catalog_dir
from gateway.cli import admin, main


def test_dictionary_json_lists_every_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert admin.main(["dictionary", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [item["path"] for item in listed] == list(DICTIONARY)
    assert {
        "path",
        "category",
        "type",
        "special_category",
        "criminal_offence",
        "third_party",
        "free_text",
    } <= set(listed[0])


def test_dictionary_table_for_people(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert admin.main(["dictionary"]) == 0
    out = capsys.readouterr().out
    assert f"Data dictionary ({len(DICTIONARY)} field paths;" in out
    assert "youth_offending.convictions[*].offence" in out
    assert "A10" in out


def test_validate_the_packaged_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert admin.main(["agreements", "validate", str(default_catalog_dir()), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is True
    assert report["problems"] == []


def test_validate_reports_every_problem_and_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = default_catalog_dir() / "children" / "lac-health.yaml"
    document = yaml.safe_load(source.read_text())
    document["colour"] = "blue"
    document["partner"] = "nobody"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(document))
    missing = tmp_path / "missing.yaml"
    code = admin.main(["agreements", "validate", str(bad), str(missing), "--json"])
    assert code == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert {(Path(p["file"]).name, p["rule"]) for p in report["problems"]} == {
        ("bad.yaml", "unknown_key"),
        ("missing.yaml", "file_not_found"),
    }


def test_validate_table_names_the_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: [unclosed\n")
    assert admin.main(["agreements", "validate", str(bad)]) == 1
    assert "yaml_invalid" in capsys.readouterr().out


def test_demo_prints_the_policy_tour(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main.main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "Policy tour" in out
    for text in ("allowed", "needs_approval", "denied", "national_data_opt_out"):
        assert text in out
    for value in ("Jordan", "Morgan", "9990000018"):
        assert value not in out
