"""Worked decisions an IG officer would sign: opt-out by purpose, police, DWP, safeguarding.

Each case is one request against a catalog agreement (or a variant of one) with the outcome and
reason codes expected; `decide` is the function the approval step runs again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pytest

from agreements.decision import DecisionContext, DisclosureRequest, Outcome, decide
from agreements.loader import default_catalog_dir, load_catalog
from agreements.model import Agreement, Purpose

CATALOG = load_catalog(default_catalog_dir())
TODAY = date(2026, 11, 25)
NHS = frozenset({"nhs_number", "local_id"})
LOCAL = frozenset({"local_id"})
NI = frozenset({"ni_number", "local_id"})

# Care and planning under one agreement that declares the opt-out (valid: see the loader tests).
CARE_AND_PLANNING = CATALOG.agreements["KM-ICB-COM-004"].model_copy(
    update={
        "id": "T-CARE-PLAN",
        "purposes": (Purpose.DIRECT_CARE, Purpose.PLANNING),
        "subject_identifiers": ("nhs_number", "local_id"),
    }
)
AGREEMENTS = {**CATALOG.agreements, CARE_AND_PLANNING.id: CARE_AND_PLANNING}


@dataclass(frozen=True)
class Case:
    agreement: str
    purpose: str
    identifiers: frozenset[str] = NHS
    opted_out: bool = False
    facts: bool = False
    approved: bool = False
    outcome: Outcome = Outcome.ALLOWED
    reasons: tuple[str, ...] = ()


CASES: dict[str, Case] = {
    # The national data opt-out, per request purpose (rule 9).
    "opted out, direct care under an agreement that declares the opt-out": Case(
        "T-CARE-PLAN", "direct_care", opted_out=True
    ),
    "opted out, planning under the same agreement": Case(
        "T-CARE-PLAN",
        "planning",
        opted_out=True,
        outcome=Outcome.DENIED,
        reasons=("national_data_opt_out",),
    ),
    "not opted out, planning": Case("T-CARE-PLAN", "planning"),
    "direct care needs no NHS number even where the agreement declares the opt-out": Case(
        "T-CARE-PLAN", "direct_care", identifiers=LOCAL
    ),
    "planning needs the NHS number to check the opt-out": Case(
        "T-CARE-PLAN",
        "planning",
        identifiers=LOCAL,
        outcome=Outcome.DENIED,
        reasons=("subject_identifier_missing",),
    ),
    "opted out, commissioning": Case(
        "KM-ICB-COM-004",
        "commissioning",
        opted_out=True,
        outcome=Outcome.DENIED,
        reasons=("national_data_opt_out",),
    ),
    "opted out, hospital discharge (individual care)": Case(
        "KM-NHS-DIS-003", "hospital_discharge", opted_out=True
    ),
    "opted out, CQC inspection (a legal requirement)": Case(
        "KM-CQC-014", "regulatory_inspection", identifiers=LOCAL, opted_out=True
    ),
    "opted out, children in need census (a statutory return)": Case(
        "KM-DFE-CIN-013", "statutory_return", identifiers=LOCAL, opted_out=True
    ),
    # Safeguarding: shared with the police in the MASH without a Schedule 2 request (rule 10).
    "MASH safeguarding to the police, opted out": Case(
        "KM-POL-SG-018", "safeguarding_children", identifiers=LOCAL, opted_out=True
    ),
    "out-of-hours adult safeguarding, opted out": Case(
        "KM-KCC-OOH-009", "safeguarding_adults", opted_out=True
    ),
    # Police by purpose: a Schedule 2 request is held for a named officer.
    "police Schedule 2 request with the Annex B facts": Case(
        "KM-POL-S2-011",
        "law_enforcement_request",
        facts=True,
        outcome=Outcome.NEEDS_APPROVAL,
        reasons=("approval_required",),
    ),
    "police Schedule 2 request without the facts": Case(
        "KM-POL-S2-011",
        "law_enforcement_request",
        outcome=Outcome.DENIED,
        reasons=("approval_facts_missing", "approval_required"),
    ),
    "police Schedule 2 request approved": Case(
        "KM-POL-S2-011", "law_enforcement_request", facts=True, approved=True
    ),
    "police MASH agreement used for a law enforcement request": Case(
        "KM-POL-SG-018",
        "law_enforcement_request",
        identifiers=LOCAL,
        facts=True,
        outcome=Outcome.DENIED,
        reasons=("purpose_not_permitted",),
    ),
    # DWP: held case by case; the opt-out never governs fraud.
    "DWP fraud request with the facts": Case(
        "KM-DWP-FR-012",
        "fraud_prevention",
        identifiers=NI,
        facts=True,
        outcome=Outcome.NEEDS_APPROVAL,
        reasons=("approval_required",),
    ),
    "DWP fraud request, subject opted out": Case(
        "KM-DWP-FR-012",
        "fraud_prevention",
        identifiers=NI,
        opted_out=True,
        facts=True,
        outcome=Outcome.NEEDS_APPROVAL,
        reasons=("approval_required",),
    ),
    "DWP fraud request without the facts": Case(
        "KM-DWP-FR-012",
        "fraud_prevention",
        identifiers=NI,
        outcome=Outcome.DENIED,
        reasons=("approval_facts_missing", "approval_required"),
    ),
    "DWP fraud request approved": Case(
        "KM-DWP-FR-012", "fraud_prevention", identifiers=NI, facts=True, approved=True
    ),
}


def _decide(case: Case, agreement: Agreement) -> tuple[Outcome, tuple[str, ...]]:
    decision = decide(
        DisclosureRequest(
            case.agreement,
            case.purpose,
            case.identifiers,
            has_approval_facts=case.facts,
            approval_granted=case.approved,
        ),
        agreement,
        DecisionContext(TODAY, frozenset(AGREEMENTS), subject_opted_out=case.opted_out),
    )
    return decision.outcome, decision.reasons


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_worked_decision_cases(case: Case) -> None:
    assert _decide(case, AGREEMENTS[case.agreement]) == (case.outcome, case.reasons)


def test_at_least_fifteen_cases_covering_each_direction() -> None:
    assert len(CASES) >= 15
    opted_out = [case for case in CASES.values() if case.opted_out]
    assert {case.outcome for case in opted_out} >= {Outcome.ALLOWED, Outcome.DENIED}
