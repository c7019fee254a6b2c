"""Catalog coverage of the partners the council's privacy notice names (DBS, schools and early
years, the safeguarding adults board, adults moving area, SSDA903, Ofsted, Cafcass, the family
court, voluntary sensory services): each agreement loads, a sample disclosure under it is
allowed and carries the fields it should, and a purpose it does not list is denied."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from agreements.decision import DecisionContext, DisclosureRequest, Outcome, decide
from agreements.law import IMPOSES_OBLIGATION, Article6
from agreements.loader import default_catalog_dir, load_catalog
from agreements.minimise import minimise
from agreements.plain_words import gateway_name
from agreements.samples import adult_record, child_record

CATALOG = load_catalog(default_catalog_dir())
TODAY = date(2026, 11, 25)
KEY = b"catalog-coverage-pseudonym-key"

Case = tuple[str, str, str, Callable[[], dict[str, Any]], set[str], set[str]]
# (agreement, purpose, partner kind, sample record, must be sent, must never be sent)
CASES: list[Case] = [
    (
        "KM-DBS-019",
        "safeguarding_adults",
        "regulator",
        adult_record,
        {"identity.name", "identity.ni_number", "social_care.safeguarding[*].type"},
        {"health.diagnoses[*].description", "relatives[*].name", "finance.benefits[*].type"},
    ),
    (
        "KM-SCH-020",
        "safeguarding_children",
        "school",
        child_record,
        {"education.upn", "social_care.cp_plan.category", "social_care.looked_after.legal_status"},
        {
            "case_notes[*].text",
            "health.diagnoses[*].description",
            "youth_offending.convictions[*].offence",
        },
    ),
    (
        "KM-EYS-021",
        "safeguarding_children",
        "school",
        child_record,
        {"identity.name", "social_care.cp_plan.category"},
        {"identity.address.line1", "case_notes[*].text", "education.upn"},
    ),
    (
        "KM-SAB-022",
        "safeguarding_adults",
        "safeguarding_board",
        adult_record,
        {"social_care.safeguarding[*].type", "case_notes[*].text", "legal.dols_authorised"},
        {"finance.direct_payment.account_holder", "health.medications[*].name"},
    ),
    (
        "KM-LA-CA37-023",
        "placement_transfer",
        "local_authority",
        adult_record,
        {"needs.personal_care", "relatives[*].is_carer", "goals[*].description"},
        {"case_notes[*].text", "social_care.safeguarding[*].type", "finance.benefits[*].type"},
    ),
    (
        "KM-DFE-903-024",
        "statutory_return",
        "government_department",
        child_record,
        {"social_care.looked_after.legal_status", "social_care.looked_after.placement_type"},
        {"identity.name", "identity.address.line1", "case_notes[*].text"},
    ),
    (
        "KM-OFS-025",
        "regulatory_inspection",
        "regulator",
        child_record,
        {"social_care.category_of_need", "social_care.cp_plan.category"},
        {"identity.name", "case_notes[*].text", "household[*].name"},
    ),
    (
        "KM-CAF-026",
        "safeguarding_children",
        "government_department",
        child_record,
        {"household[*].relationship", "social_care.cp_plan.category", "case_notes[*].text"},
        {"health.diagnoses[*].description", "education.upn"},
    ),
    (
        "KM-FCT-027",
        "safeguarding_children",
        "government_department",
        child_record,
        {"social_care.looked_after.legal_status", "case_notes[*].text"},
        {"identity.address.line1", "health.diagnoses[*].description"},
    ),
    (
        "KM-VOL-SH-028",
        "care_assessment",
        "voluntary_sector",
        adult_record,
        {"communication.sensory_needs", "needs.mobility"},
        {"health.diagnoses[*].description", "case_notes[*].text", "relatives[*].name"},
    ),
]


def _decide(agreement_id: str, purpose: str) -> Any:
    agreement = CATALOG.agreements[agreement_id]
    request = DisclosureRequest(agreement_id, purpose, frozenset(agreement.subject_identifiers))
    return decide(request, agreement, DecisionContext(TODAY, frozenset({agreement_id})))


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_a_sample_disclosure_is_allowed_with_the_right_fields(case: Case) -> None:
    agreement_id, purpose, kind, record, wanted, never = case
    agreement = CATALOG.agreements[agreement_id]
    assert CATALOG.partner_of(agreement).kind == kind
    decision = _decide(agreement_id, purpose)
    assert decision.outcome is Outcome.ALLOWED, decision.reasons
    result = minimise(record(), agreement, purpose, pseudonym_key=KEY, today=TODAY)
    sent = set(result.sent) - {f"subject.{name}" for name in agreement.subject_identifiers}
    assert wanted <= sent
    assert not never & sent
    assert sent <= set(agreement.rules_for(purpose))
    assert not result.refused  # the samples hold well-typed values and listed codes


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_a_purpose_the_agreement_does_not_list_is_denied(case: Case) -> None:
    agreement_id = case[0]
    wrong = "research" if case[1] != "research" else "planning"
    decision = _decide(agreement_id, wrong)
    assert decision.outcome is Outcome.DENIED
    assert "purpose_not_permitted" in decision.reasons
    result = minimise(
        case[3](), CATALOG.agreements[agreement_id], wrong, pseudonym_key=KEY, today=TODAY
    )
    assert result.data == {}
    assert result.sent == ()


def test_every_legal_obligation_names_a_gateway_that_imposes_one_in_words() -> None:
    for case in CASES:
        basis = CATALOG.agreements[case[0]].lawful_basis
        if basis.article_6 == Article6.LEGAL_OBLIGATION:
            named = IMPOSES_OBLIGATION.intersection(basis.gateways)
            assert named, case[0]
        for gateway in basis.gateways:
            assert gateway_name(gateway) != gateway, gateway  # the Act is known by name


def test_the_portal_partners_say_their_channel_is_an_example_profile() -> None:
    text = (default_catalog_dir() / "partners.yaml").read_text()
    for partner in ("dbs", "dfe", "ofsted"):
        entry = text.index(f"- id: {partner}\n")
        comment = " ".join(text[text.rindex("\n\n", 0, entry) : entry].replace("#", "").split())
        assert "example profile" in comment, partner
