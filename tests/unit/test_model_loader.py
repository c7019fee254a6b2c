"""Agreement model and loader: every refusal names the file, the field and the rule."""

from __future__ import annotations

import copy
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from agreements.catalog_errors import CatalogError, CatalogProblem
from agreements.loader import (
    default_catalog_dir,
    load_catalog,
    parse_agreement,
    parse_partners,
    validate_paths,
)
from agreements.model import (
    Agreement,
    ChannelSpec,
    ChannelType,
    Partner,
    Purpose,
    Transform,
    channel_target,
)
from agreements.period import Period

PARTNERS = parse_partners(
    {
        "partners": [
            {
                "id": "medway-ft",
                "name": "Medway NHS Foundation Trust",
                "kind": "nhs_trust",
                "channel": {
                    "type": "webhook",
                    "endpoint": "https://lac-health.medway-ft.example/gatehouse",
                    "receipt_deadline": "PT1H",
                },
            },
            {
                "id": "km-icb",
                "name": "ICB",
                "kind": "icb",
                "channel": {"type": "mesh", "mailbox": "X26ABC3", "workflow_id": "GATEHOUSE_TEST"},
            },
        ]
    },
    source="partners.yaml",
)

BASE: dict[str, Any] = {
    "id": "KM-NHS-LAC-001",
    "version": 3,
    "title": "Health assessments for looked-after children",
    "tier": "purpose",
    "status": "active",
    "effective_from": date(2026, 4, 1),
    "effective_to": date(2028, 3, 31),
    "review_due": date(2027, 4, 1),
    "partner": "medway-ft",
    "purposes": ["looked_after_children_health"],
    "lawful_basis": {
        "article_6": "e",
        "article_9": "h",
        "schedule_1": ["sch1_p2", "sch1_p18"],
        "gateways": ["ca89_s17", "ca04_s10"],
        "appropriate_policy_document": "APD-2026-01",
    },
    "national_data_opt_out": "direct_care",
    "approval": "none",
    "retention": "P2Y",
    "onward_sharing": "prohibited",
    "subject_identifiers": ["nhs_number"],
    "fields": [
        {"path": "identity.name"},
        {"path": "identity.date_of_birth"},
        {"path": "identity.address.postcode", "transform": "postcode_district"},
        {"path": "health.diagnoses[*].code", "purposes": ["looked_after_children_health"]},
    ],
    "references": {"dpia": "DPIA-2026-004"},
}


def doc(**changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(BASE)
    document.update(changes)
    return document


def problems_of(document: dict[str, Any]) -> list[CatalogProblem]:
    with pytest.raises(CatalogError) as caught:
        parse_agreement(document, source="lac.yaml", partners=PARTNERS)
    assert caught.value.code == "catalog_invalid"
    assert all(problem.file == "lac.yaml" for problem in caught.value.problems)
    return list(caught.value.problems)


def rules(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(problem.field, problem.rule) for problem in problems_of(document)}


def test_the_issue_example_loads() -> None:
    agreement = parse_agreement(doc(), source="lac.yaml", partners=PARTNERS)
    assert agreement.purposes == (Purpose.LOOKED_AFTER_CHILDREN_HEALTH,)
    assert agreement.fields[2].transform is Transform.POSTCODE_DISTRICT
    assert agreement.retain_until(date(2026, 5, 1)) == date(2028, 5, 1)


def test_agreements_are_frozen() -> None:
    agreement = parse_agreement(doc(), source="lac.yaml", partners=PARTNERS)
    with pytest.raises(ValueError, match="frozen"):
        agreement.version = 4


def test_unknown_keys_are_refused_at_any_depth() -> None:
    document = doc(colour="blue")
    document["lawful_basis"]["article_99"] = "z"
    document["fields"][0]["transfrom"] = "keep"
    assert {
        ("colour", "unknown_key"),
        ("lawful_basis.article_99", "unknown_key"),
        ("fields[0].transfrom", "unknown_key"),
    } <= rules(document)


def test_unknown_values_and_missing_keys_are_named() -> None:
    document = doc(purposes=["gossip"], tier="eternal")
    del document["retention"]
    assert rules(document) == {
        ("purposes[0]", "unknown_value"),
        ("tier", "unknown_value"),
        ("retention", "required"),
    }


def test_unknown_field_path_is_refused() -> None:
    document = doc()
    document["fields"].append({"path": "identity.shoe_size"})
    assert rules(document) == {("fields[4].path", "unknown_field")}


def test_special_category_without_article_9_is_refused() -> None:
    document = doc()
    del document["lawful_basis"]["article_9"]
    assert ("lawful_basis.article_9", "article_9_missing") in rules(document)


def test_special_category_without_schedule_1_is_refused() -> None:
    document = doc()
    document["lawful_basis"]["schedule_1"] = []
    assert ("lawful_basis.schedule_1", "schedule_1_missing") in rules(document)


def test_schedule_1_must_fit_the_article_9_condition() -> None:
    document = doc()
    document["lawful_basis"]["schedule_1"] = ["sch1_p18"]  # Part 2 fits (g), not (h)
    assert ("lawful_basis.schedule_1", "schedule_1_mismatch") in rules(document)


def test_explicit_consent_needs_no_schedule_1_condition() -> None:
    document = doc()
    document["lawful_basis"].update({"article_9": "a", "schedule_1": []})
    document["lawful_basis"].pop("appropriate_policy_document")
    assert parse_agreement(document, source="x", partners=PARTNERS).lawful_basis.article_9 == "a"


def test_dropped_special_category_fields_need_no_condition() -> None:
    document = doc()
    document["lawful_basis"] = {"article_6": "e", "gateways": ["ca89_s22"]}
    document["fields"] = [
        {"path": "identity.name"},
        {"path": "health.diagnoses[*].code", "transform": "drop"},
    ]
    assert parse_agreement(document, source="x", partners=PARTNERS).fields[1].transform == "drop"


def test_criminal_offence_data_without_article_10_is_refused() -> None:
    document = doc(purposes=["looked_after_children_health"])
    document["fields"] = [{"path": "youth_offending.convictions[*].offence"}]
    assert rules(document) == {("lawful_basis.article_10", "article_10_missing")}
    document["lawful_basis"]["article_10"] = ["official_authority"]
    assert parse_agreement(document, source="x", partners=PARTNERS).lawful_basis.article_10


def test_article_6_f_is_refused_for_the_council() -> None:
    document = doc()
    document["lawful_basis"]["article_6"] = "f"
    assert ("lawful_basis.article_6", "article_6_f_public_authority") in rules(document)


def test_part_2_condition_needs_an_appropriate_policy_document() -> None:
    document = doc()
    del document["lawful_basis"]["appropriate_policy_document"]
    assert rules(document) == {
        ("lawful_basis.appropriate_policy_document", "policy_document_missing")
    }


def test_dates_out_of_order_are_refused() -> None:
    document = doc(effective_to=date(2026, 3, 1), review_due=date(2026, 1, 1))
    assert rules(document) == {
        ("effective_to", "dates_out_of_order"),
        ("review_due", "dates_out_of_order"),
    }


def test_unknown_partner_is_refused() -> None:
    assert rules(doc(partner="nobody")) == {("partner", "unknown_partner")}


def test_one_off_and_schedule_2_must_require_approval() -> None:
    assert rules(doc(tier="one_off")) == {("approval", "approval_must_be_required")}
    document = doc()
    document["lawful_basis"]["exemption"] = "sch2_p2"
    assert rules(document) == {("approval", "approval_must_be_required")}


def test_listed_onward_sharing_needs_recipients() -> None:
    assert rules(doc(onward_sharing="listed")) == {
        ("onward_recipients", "onward_recipients_missing")
    }


def test_commissioning_cannot_claim_the_direct_care_opt_out_exemption() -> None:
    document = doc(purposes=["commissioning"])
    document["fields"] = [{"path": "identity.gender"}]
    assert rules(document) == {("national_data_opt_out", "opt_out_exemption_invalid")}


def test_free_text_needs_named_purposes() -> None:
    document = doc(purposes=["safeguarding_children"])
    document["lawful_basis"] = {
        "article_6": "e",
        "gateways": ["ca89_s47"],
        "article_9": "g",
        "schedule_1": ["sch1_p18"],
        "article_10": ["sch1_p18"],
        "appropriate_policy_document": "APD-1",
    }
    document["fields"] = [{"path": "case_notes[*].text"}]
    assert rules(document) == {("fields[0].purposes", "free_text_needs_purposes")}


def test_field_rules_are_checked_one_by_one() -> None:
    document = doc()
    document["fields"] = [
        {"path": "identity.name", "transform": "year_only"},
        {"path": "identity.name"},
        {"path": "identity.date_of_birth", "purposes": ["research"]},
        {"path": "identity.address.town", "transform": "postcode_district"},
    ]
    assert rules(document) == {
        ("fields[0].transform", "transform_not_applicable"),
        ("fields[1].path", "duplicate_field_rule"),
        ("fields[2].purposes", "field_purpose_not_in_agreement"),
        ("fields[3].transform", "transform_not_applicable"),
    }


def test_mesh_settings_on_a_webhook_partner_are_refused() -> None:
    assert rules(doc(gzip=True, workflow_id="GATEHOUSE_X")) == {
        ("gzip", "channel_setting_not_applicable"),
        ("workflow_id", "channel_setting_not_applicable"),
    }


def test_duplicate_purposes_are_refused() -> None:
    assert ("purposes", "invalid_value") in rules(doc(purposes=["direct_care", "direct_care"]))


def test_to_document_round_trips_and_the_hash_is_stable() -> None:
    agreement = parse_agreement(doc(), source="x", partners=PARTNERS)
    again = parse_agreement(agreement.to_document(), source="x", partners=PARTNERS)
    assert again == agreement
    assert again.content_hash() == agreement.content_hash()
    assert len(agreement.content_hash()) == 64


def test_content_hash_changes_with_content_only() -> None:
    agreement = parse_agreement(doc(), source="x", partners=PARTNERS)
    reordered = doc()
    reordered["lawful_basis"] = dict(reversed(list(reordered["lawful_basis"].items())))
    same = parse_agreement(reordered, source="x", partners=PARTNERS)
    changed = parse_agreement(doc(retention="P3Y"), source="x", partners=PARTNERS)
    assert same.content_hash() == agreement.content_hash()
    assert changed.content_hash() != agreement.content_hash()


def test_period_parsing_and_calendar_arithmetic() -> None:
    assert Period.parse("P1Y6M").after(date(2024, 8, 31)) == date(2026, 2, 28)
    assert Period.parse("P30D").after(date(2026, 1, 1)) == date(2026, 1, 31)
    assert str(Period.parse("p2y")) == "P2Y"
    for bad in ("2Y", "P", "P-1Y", "PT1H"):
        with pytest.raises(ValueError, match="ISO 8601"):
            Period.parse(bad)


def test_channel_rules() -> None:
    with pytest.raises(ValueError, match="https"):
        ChannelSpec(type=ChannelType.WEBHOOK, endpoint="http://partner.example/in")
    with pytest.raises(ValueError, match="mailbox"):
        ChannelSpec(type=ChannelType.MESH, workflow_id="GATEHOUSE_X")
    loopback = ChannelSpec(type=ChannelType.WEBHOOK, endpoint="http://127.0.0.1:9000/in")
    assert loopback.is_loopback_http
    assert loopback.effective_receipt_deadline == timedelta(hours=1)
    mesh = ChannelSpec(type=ChannelType.MESH, mailbox="X26ABC2", workflow_id="GATEHOUSE_X")
    assert mesh.effective_receipt_deadline == timedelta(hours=24)


def test_channel_target_merges_agreement_overrides() -> None:
    partner = Partner.model_validate(
        {
            "id": "km-icb",
            "name": "ICB",
            "kind": "icb",
            "channel": {
                "type": "mesh",
                "mailbox": "X26ABC3",
                "workflow_id": "GATEHOUSE_A",
                "settings": {"chunk_size": 1000},
            },
        }
    )
    document = doc(partner="km-icb", workflow_id="GATEHOUSE_B", gzip=True)
    document["receipt_deadline"] = "PT2H"
    agreement = parse_agreement(document, source="x", partners={"km-icb": partner})
    target = channel_target(partner, agreement)
    assert target["mailbox"] == "X26ABC3"
    assert target["workflow_id"] == "GATEHOUSE_B"
    assert target["receipt_deadline_seconds"] == 7200
    assert target["gzip"] is True
    assert target["chunk_size"] == 1000


def test_partner_problems_are_all_reported() -> None:
    with pytest.raises(CatalogError) as caught:
        parse_partners(
            {
                "partners": [
                    {"id": "a", "name": "A", "kind": "alien", "channel": {"type": "webhook"}},
                    {"id": "b", "name": "B", "kind": "icb", "channel": {"type": "pigeon"}},
                ],
                "extra": 1,
            },
            source="partners.yaml",
        )
    found = {(p.field, p.rule) for p in caught.value.problems}
    assert ("partners[0].kind", "unknown_value") in found
    assert ("partners[0].channel", "invalid_value") in found
    assert ("partners[1].channel.type", "unknown_value") in found
    assert ("extra", "unknown_key") in found


def write_catalog(root: Path, agreements: dict[str, dict[str, Any]]) -> Path:
    partners = {"partners": [p.model_dump(mode="json") for p in PARTNERS.values()]}
    (root / "partners.yaml").write_text(yaml.safe_dump(partners))
    for name, document in agreements.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(document))
    return root


def test_load_catalog_reads_subfolders(tmp_path: Path) -> None:
    write_catalog(tmp_path, {"children/lac.yaml": doc(), "adults/other.yml": doc(id="OTHER-1")})
    catalog = load_catalog(tmp_path)
    assert set(catalog.agreements) == {"KM-NHS-LAC-001", "OTHER-1"}
    agreement = catalog.agreement("OTHER-1")
    assert agreement is not None
    assert catalog.partner_of(agreement).id == "medway-ft"
    assert catalog.agreement("missing") is None


def test_validate_reports_every_problem_in_every_file(tmp_path: Path) -> None:
    write_catalog(
        tmp_path,
        {
            "a.yaml": doc(partner="nobody"),
            "b.yaml": doc(id="B-1", colour="blue"),
            "c.yaml": doc(),
            "d.yaml": doc(),  # same id as c.yaml
            "e.yaml": doc(id="E-1", parent="NOT-THERE"),
        },
    )
    (tmp_path / "f.yaml").write_text("id: [unclosed\n")
    (tmp_path / "g.yaml").write_text("id: G-1\nid: G-2\n")
    found = {(Path(p.file).name, p.rule) for p in validate_paths([tmp_path])}
    assert found == {
        ("a.yaml", "unknown_partner"),
        ("b.yaml", "unknown_key"),
        ("d.yaml", "duplicate_agreement_id"),
        ("e.yaml", "unknown_parent"),
        ("f.yaml", "yaml_invalid"),
        ("g.yaml", "yaml_invalid"),
    }
    with pytest.raises(CatalogError) as caught:
        load_catalog(tmp_path)
    assert len(caught.value.problems) == 6
    assert "more problems" in str(caught.value)


def test_validate_single_files_uses_the_nearest_partners(tmp_path: Path) -> None:
    write_catalog(tmp_path, {"sub/ok.yaml": doc(), "sub/bad.yaml": doc(partner="nobody")})
    assert validate_paths([tmp_path / "sub" / "ok.yaml"]) == []
    (bad,) = validate_paths([tmp_path / "sub" / "bad.yaml"])
    assert (bad.field, bad.rule) == ("partner", "unknown_partner")
    (missing,) = validate_paths([tmp_path / "nope.yaml"])
    assert missing.rule == "file_not_found"


def test_a_catalog_needs_partners_yaml(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(doc()))
    found = {(Path(p.file).name, p.rule) for p in validate_paths([tmp_path])}
    assert found == {("partners.yaml", "file_not_found"), ("a.yaml", "unknown_partner")}


def test_problem_text_names_file_field_and_rule() -> None:
    (problem,) = problems_of(doc(partner="nobody"))
    assert str(problem).startswith("lac.yaml: partner: ")
    assert str(problem).endswith("[unknown_partner]")
    assert problem.to_dict()["rule"] == "unknown_partner"


def test_default_catalog_dir_is_packaged() -> None:
    assert (default_catalog_dir() / "partners.yaml").is_file()
    assert isinstance(load_catalog(default_catalog_dir()).agreements["KM-NHS-LAC-001"], Agreement)


def test_purposes_and_subject_identifiers_cannot_be_empty() -> None:
    assert rules(doc(purposes=[], fields=[], subject_identifiers=[])) == {
        ("purposes", "required"),
        ("subject_identifiers", "required"),
    }


def test_the_policy_core_is_pure() -> None:
    """No imports of the service or channels, no clock reads, YAML read only by the loader."""
    import ast

    package = default_catalog_dir().parent
    for source in package.glob("*.py"):
        tree = ast.parse(source.read_text())
        imported = {
            node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
        } | {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        assert not {m for m in imported if m.split(".")[0] in {"gateway", "adapters"}}, source
        if source.name != "loader.py":
            assert "yaml" not in imported, source
        text = source.read_text()
        for clock in ("date.today(", "datetime.now(", "time.time(", "datetime.utcnow("):
            assert clock not in text, (source, clock)
