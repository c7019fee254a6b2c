"""Rules 9-13 at load time: agreements an IG officer would refuse do not load, naming the rule.

Each refused case changes one thing in an agreement that loads, so the rule named is the one
that refused it (the loading twin shows the case could have loaded).
"""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from agreements.catalog_errors import CatalogError
from agreements.decision import opt_out_applies
from agreements.loader import parse_agreement, parse_partners
from agreements.model import Agreement, PartnerKind
from agreements.vocabulary import (
    BEYOND_INDIVIDUAL_CARE,
    INDIVIDUAL_CARE,
    LAW_ENFORCEMENT,
    LEGAL_REQUIREMENT,
    SAFEGUARDING,
    Purpose,
    recipient_under_part_3,
)

_KINDS = ("nhs_trust", "icb", "police", "dwp", "care_provider", "youth_justice", "regulator")
PARTNERS = parse_partners(
    {
        "partners": [
            {
                "id": kind.replace("_", "-"),
                "name": f"Test {kind}",
                "kind": kind,
                "channel": {"type": "webhook", "endpoint": f"https://{kind}.example/in"},
            }
            for kind in _KINDS
        ]
    },
    source="partners.yaml",
)

CARE: dict[str, Any] = {
    "id": "T-CARE-1",
    "version": 1,
    "title": "Care for adults",
    "tier": "purpose",
    "status": "active",
    "effective_from": date(2026, 1, 1),
    "review_due": date(2027, 1, 1),
    "partner": "nhs-trust",
    "purposes": ["direct_care"],
    "lawful_basis": {
        "article_6": "e",
        "article_9": "h",
        "schedule_1": ["sch1_p2"],
        "gateways": ["care_act_s6"],
    },
    "national_data_opt_out": "direct_care",
    "retention": "P1Y",
    "onward_sharing": "prohibited",
    "subject_identifiers": ["nhs_number", "local_id"],
    "references": {"dpia": "DPIA-T-1"},  # special category data: a DPIA is required
    "fields": [
        {"path": "identity.name"},
        {"path": "identity.date_of_birth"},
        {"path": "needs.personal_care"},
        {"path": "legal.dols_authorised"},
    ],
}

POLICE_S2: dict[str, Any] = {
    **CARE,
    "id": "T-POL-1",
    "title": "Police requests",
    "partner": "police",
    "purposes": ["law_enforcement_request"],
    "lawful_basis": {"article_6": "e", "exemption": "sch2_p2", "gateways": ["cda98_s115"]},
    "national_data_opt_out": "public_interest",
    "approval": "required",
    "fields": [{"path": "identity.name"}, {"path": "identity.address.line1"}],
}

DWP_REQUIRED: dict[str, Any] = {
    **POLICE_S2,
    "id": "T-DWP-1",
    "partner": "dwp",
    "purposes": ["fraud_prevention"],
    "lawful_basis": {"article_6": "c", "exemption": "sch2_p5", "gateways": ["ssaa92_s109b"]},
    "subject_identifiers": ["ni_number"],
}

MASH: dict[str, Any] = {
    **CARE,
    "id": "T-MASH-1",
    "partner": "police",
    "purposes": ["safeguarding_children"],
    "lawful_basis": {
        "article_6": "e",
        "article_9": "g",
        "schedule_1": ["sch1_p18"],
        "article_10": ["sch1_p18"],
        "gateways": ["ca89_s47", "ca04_s11"],
        "appropriate_policy_document": "APD-1",
    },
    "national_data_opt_out": "public_interest",
    "fields": [
        {"path": "identity.name"},
        {"path": "social_care.cp_plan.category"},
        {"path": "risks[*].description", "purposes": ["safeguarding_children"]},
    ],
}


def variant(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A deep copy of `base`; `lawful_basis` changes are merged, `None` deletes a key."""
    document = copy.deepcopy(base)
    basis = changes.pop("lawful_basis", None)
    if basis is not None:
        document["lawful_basis"].update(basis)
        document["lawful_basis"] = {k: v for k, v in document["lawful_basis"].items() if v}
    document.update(changes)
    return {k: v for k, v in document.items() if v is not None}


def load(document: dict[str, Any]) -> Agreement:
    return parse_agreement(document, source="t.yaml", partners=PARTNERS)


def refused_rules(document: dict[str, Any]) -> set[str]:
    with pytest.raises(CatalogError) as caught:
        load(document)
    return {problem.rule for problem in caught.value.problems}


LOADS = {
    "care, Article 9(2)(h) with para 2": CARE,
    "care and planning, opt-out applies": variant(
        CARE, purposes=["direct_care", "planning"], national_data_opt_out="applies"
    ),
    "free text and offence data via Schedule 1 Part 1 para 2 (s10(5))": variant(
        CARE,
        lawful_basis={"article_10": ["sch1_p2"]},
        fields=[{"path": "accommodation.access_notes", "purposes": ["direct_care"]}],
    ),
    "police Schedule 2 para 2 request, approved case by case": POLICE_S2,
    "police MASH safeguarding, no Schedule 2 and no approval": MASH,
    "DWP can require it: 6(1)(c), s109B, para 5": DWP_REQUIRED,
    "DWP voluntary: 6(1)(e), DEA 2017 s56, para 2": variant(
        DWP_REQUIRED,
        lawful_basis={"article_6": "e", "exemption": "sch2_p2", "gateways": ["dea17_s56"]},
    ),
    "CQC can require it: 6(1)(c), HSCA 2008 s64": variant(
        CARE,
        partner="regulator",
        purposes=["regulatory_inspection"],
        lawful_basis={"article_6": "c", "gateways": ["hsca08_s64"]},
        national_data_opt_out="legal_requirement",
    ),
    "initials for a name": variant(
        CARE, fields=[{"path": "identity.name", "transform": "initials"}]
    ),
}


@pytest.mark.parametrize("document", LOADS.values(), ids=LOADS.keys())
def test_lawful_agreements_load(document: dict[str, Any]) -> None:
    assert load(document).id == document["id"]


REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "opt-out declared for individual care only": (
        variant(CARE, national_data_opt_out="applies"),
        "opt_out_applies_to_no_purpose",
    ),
    "not patient data, yet health and care fields go": (
        variant(CARE, national_data_opt_out="not_patient_data"),
        "opt_out_not_patient_data_contradicted",
    ),
    "direct care exemption claimed for planning": (
        variant(CARE, purposes=["direct_care", "planning"]),
        "opt_out_exemption_invalid",
    ),
    "police law enforcement on a purpose tier without approval": (
        variant(POLICE_S2, approval="none"),
        "case_by_case_approval_missing",
    ),
    "police law enforcement naming no Schedule 2 provision": (
        variant(POLICE_S2, lawful_basis={"exemption": None}),
        "schedule_2_provision_missing",
    ),
    "police crime prevention (not safeguarding) without approval": (
        variant(POLICE_S2, purposes=["crime_prevention"], approval="none"),
        "case_by_case_approval_missing",
    ),
    "DWP fraud without approval": (
        variant(DWP_REQUIRED, approval="none"),
        "case_by_case_approval_missing",
    ),
    "para 5 without a power to require": (
        variant(DWP_REQUIRED, lawful_basis={"article_6": "e", "gateways": ["dea17_s56"]}),
        "schedule_2_p5_needs_power_to_require",
    ),
    "para 2 on a legal obligation": (
        variant(DWP_REQUIRED, lawful_basis={"exemption": "sch2_p2"}),
        "schedule_2_p2_is_voluntary",
    ),
    "s110A is the council's investigators' power, not a gateway": (
        variant(POLICE_S2, lawful_basis={"gateways": ["ssaa92_s110a"]}),
        "gateway_not_a_disclosure_power",
    ),
    "consent for safeguarding": (
        variant(MASH, lawful_basis={"article_6": "a"}),
        "consent_not_for_purpose",
    ),
    "explicit consent for a statutory return": (
        variant(
            CARE,
            purposes=["statutory_return"],
            lawful_basis={"article_6": "c", "article_9": "a", "gateways": ["ca89_s83"]},
            national_data_opt_out="legal_requirement",
        ),
        "consent_not_for_purpose",
    ),
    "contract for a statutory function": (
        variant(CARE, purposes=["hospital_discharge"], lawful_basis={"article_6": "b"}),
        "contract_not_for_statutory_function",
    ),
    "legal obligation naming only a power": (
        variant(CARE, lawful_basis={"article_6": "c", "gateways": ["care_act_s6"]}),
        "legal_obligation_not_named",
    ),
    "public task naming no gateway": (
        variant(CARE, lawful_basis={"gateways": None}),
        "gateway_power_not_named",
    ),
    "9(2)(h) for crime prevention": (
        variant(
            CARE,
            partner="youth-justice",
            purposes=["crime_prevention"],
            lawful_basis={"gateways": ["cda98_s37"]},
            national_data_opt_out="public_interest",
        ),
        "article_9_h_not_for_crime",
    ),
    "a care provider as a law enforcement recipient": (
        variant(POLICE_S2, partner="care-provider"),
        "partner_kind_cannot_receive",
    ),
    "a care provider as a research recipient": (
        variant(
            CARE, partner="care-provider", purposes=["research"], national_data_opt_out="applies"
        ),
        "partner_kind_cannot_receive",
    ),
    "DoLS and personal care are special category": (
        variant(CARE, lawful_basis={"article_9": None, "schedule_1": None}),
        "article_9_missing",
    ),
    "abuse category reveals alleged offences": (
        variant(MASH, lawful_basis={"article_10": None}),
        "article_10_missing",
    ),
    "initials for a field that is not a name": (
        variant(CARE, fields=[{"path": "needs.personal_care", "transform": "initials"}]),
        "transform_not_applicable",
    ),
}


@pytest.mark.parametrize(("document", "rule"), REFUSED.values(), ids=REFUSED.keys())
def test_unlawful_agreements_are_refused_naming_the_rule(
    document: dict[str, Any], rule: str
) -> None:
    assert rule in refused_rules(document)


def test_at_least_ten_refused_and_five_loading_cases() -> None:
    assert len(REFUSED) >= 10
    assert len(LOADS) >= 5
    assert len({rule for _, rule in REFUSED.values()}) >= 10


def test_purpose_groups_cover_every_purpose_exactly_once() -> None:
    groups = [
        INDIVIDUAL_CARE,
        BEYOND_INDIVIDUAL_CARE,
        SAFEGUARDING,
        LAW_ENFORCEMENT,
        LEGAL_REQUIREMENT,
    ]
    assert sum(len(group) for group in groups) == len(Purpose)
    assert frozenset().union(*groups) == frozenset(Purpose)
    assert {"planning", "commissioning", "research"} == BEYOND_INDIVIDUAL_CARE


def test_the_opt_out_applies_per_purpose_of_a_loaded_agreement() -> None:
    both = load(LOADS["care and planning, opt-out applies"])
    assert opt_out_applies(both, "planning")
    assert not opt_out_applies(both, "direct_care")
    assert not opt_out_applies(load(CARE), "planning")


@pytest.mark.parametrize(
    ("kind", "purpose", "part_3"),
    [
        (PartnerKind.POLICE, "safeguarding_children", True),
        (PartnerKind.POLICE, "law_enforcement_request", True),
        (PartnerKind.PROBATION, "crime_prevention", True),
        (PartnerKind.YOUTH_JUSTICE, "crime_prevention", True),
        (PartnerKind.DWP, "fraud_prevention", True),
        (PartnerKind.DWP, "statutory_return", False),
        (PartnerKind.NHS_TRUST, "direct_care", False),
    ],
)
def test_competent_authorities_are_marked(kind: PartnerKind, purpose: str, part_3: bool) -> None:
    assert recipient_under_part_3(kind, purpose) is part_3


def test_every_rule_named_here_is_documented() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "reason-codes.md"
    section = docs.read_text().split("## Agreement validation", 1)[1].split("\n## ", 1)[0]
    for _, rule in REFUSED.values():
        assert f"- `{rule}`:" in section, rule
