"""The example catalog: complete, valid, and realistic enough for an IG officer to recognise."""

from __future__ import annotations

from datetime import date

import pytest

from agreements.decision import DecisionContext, DisclosureRequest, Outcome, decide
from agreements.loader import default_catalog_dir, load_catalog, validate_paths
from agreements.model import (
    AgreementStatus,
    ChannelType,
    OptOutBasis,
    PartnerKind,
    Tier,
    Transform,
)

CATALOG = load_catalog(default_catalog_dir())
TODAY = date(2026, 11, 25)
EXAMPLES = {"EXAMPLE-EXPIRED-001", "EXAMPLE-SUSPENDED-001"}


def test_the_catalog_validates_with_no_problems() -> None:
    assert validate_paths([default_catalog_dir()]) == []


def test_at_least_seventeen_agreements_and_every_partner_kind_named_in_the_design() -> None:
    assert len(CATALOG.agreements) >= 17
    kinds = {partner.kind for partner in CATALOG.partners.values()}
    assert {
        PartnerKind.NHS_TRUST,
        PartnerKind.ICB,
        PartnerKind.GP_PRACTICE,
        PartnerKind.CARE_PROVIDER,
        PartnerKind.POLICE,
        PartnerKind.PROBATION,
        PartnerKind.YOUTH_JUSTICE,
        PartnerKind.DWP,
        PartnerKind.LOCAL_AUTHORITY,
        PartnerKind.REGULATOR,
        PartnerKind.GOVERNMENT_DEPARTMENT,
    } <= kinds


def test_each_live_agreement_differs_in_purpose_partner_or_data() -> None:
    # Two statutory returns to DfE (CIN census, SSDA903) share partner and purpose, not data.
    live = [a for a in CATALOG.agreements.values() if a.id not in EXAMPLES]
    keys = {(a.partner, a.purposes, frozenset(r.path for r in a.fields)) for a in live}
    assert len(keys) == len(live)


@pytest.mark.parametrize(
    ("agreement_id", "purpose", "partner_kind"),
    [
        ("KM-NHS-LAC-001", "looked_after_children_health", "nhs_trust"),
        ("KM-NHS-MH-002", "direct_care", "nhs_trust"),
        ("KM-NHS-DIS-003", "hospital_discharge", "nhs_trust"),
        ("KM-ICB-COM-004", "commissioning", "icb"),
        ("KM-GP-005", "direct_care", "gp_practice"),
        ("KM-DOM-006", "direct_care", "care_provider"),
        ("KM-RES-007", "direct_care", "care_provider"),
        ("KM-RSP-008", "direct_care", "care_provider"),
        ("KM-KCC-OOH-009", "emergency", "local_authority"),
        ("KM-LA-PLC-010", "placement_transfer", "local_authority"),
        ("KM-POL-S2-011", "law_enforcement_request", "police"),
        ("KM-DWP-FR-012", "fraud_prevention", "dwp"),
        ("KM-DFE-CIN-013", "statutory_return", "government_department"),
        ("KM-CQC-014", "regulatory_inspection", "regulator"),
        ("KM-YJS-015", "crime_prevention", "youth_justice"),
        ("KM-PRB-016", "crime_prevention", "probation"),
        ("KM-POL-SG-018", "safeguarding_children", "police"),
    ],
)
def test_the_agreements_the_issue_lists_are_present(
    agreement_id: str, purpose: str, partner_kind: str
) -> None:
    agreement = CATALOG.agreements[agreement_id]
    assert purpose in agreement.purposes
    assert CATALOG.partner_of(agreement).kind == partner_kind


def test_police_and_dwp_requests_are_one_off_schedule_2_with_approval() -> None:
    for agreement_id in ("KM-POL-S2-011", "KM-DWP-FR-012"):
        agreement = CATALOG.agreements[agreement_id]
        assert agreement.tier == Tier.ONE_OFF
        assert agreement.lawful_basis.exemption == "sch2_p2"
        assert agreement.needs_approval


def test_icb_commissioning_applies_the_opt_out_and_pseudonymises() -> None:
    icb = CATALOG.agreements["KM-ICB-COM-004"]
    assert icb.national_data_opt_out == OptOutBasis.APPLIES
    assert icb.subject_transform == Transform.PSEUDONYMISE
    assert all(rule.path != "identity.name" for rule in icb.fields)


def test_examples_are_labelled_and_refused() -> None:
    expired = CATALOG.agreements["EXAMPLE-EXPIRED-001"]
    suspended = CATALOG.agreements["EXAMPLE-SUSPENDED-001"]
    assert expired.status == AgreementStatus.EXPIRED
    assert suspended.status == AgreementStatus.SUSPENDED
    for agreement in (expired, suspended):
        assert agreement.title.startswith("EXAMPLE")
        request = DisclosureRequest(
            agreement.id, str(agreement.purposes[0]), frozenset(agreement.subject_identifiers)
        )
        decision = decide(request, agreement, DecisionContext(TODAY, frozenset({agreement.id})))
        assert "agreement_not_active" in decision.reasons


def test_live_agreements_are_in_force_on_the_tour_date() -> None:
    for agreement in CATALOG.agreements.values():
        if agreement.id in EXAMPLES:
            continue
        assert agreement.status == AgreementStatus.ACTIVE, agreement.id
        assert agreement.effective_from <= TODAY, agreement.id
        assert agreement.effective_to is None or agreement.effective_to >= TODAY, agreement.id


def test_nhs_partners_on_mesh_and_others_on_https_webhooks() -> None:
    mesh = [p for p in CATALOG.partners.values() if p.channel.type == ChannelType.MESH]
    webhooks = [p for p in CATALOG.partners.values() if p.channel.type == ChannelType.WEBHOOK]
    assert {"medway-ft", "km-icb"} <= {p.id for p in mesh}
    for partner in mesh:
        assert partner.channel.mailbox in {"X26ABC2", "X26ABC3"}
        assert partner.channel.workflow_id
    assert len(webhooks) >= 2
    for partner in webhooks:
        assert partner.channel.endpoint is not None
        assert partner.channel.endpoint.startswith("https://")
        assert ".example" in partner.channel.endpoint


def test_every_agreement_has_governance_facts() -> None:
    for agreement in CATALOG.agreements.values():
        if agreement.id in EXAMPLES:
            continue
        assert agreement.approvals, agreement.id
        assert agreement.references.dpia, agreement.id


def test_special_and_criminal_data_agreements_state_their_conditions() -> None:
    yjs = CATALOG.agreements["KM-YJS-015"]
    assert yjs.lawful_basis.article_10
    assert yjs.lawful_basis.appropriate_policy_document
    assert CATALOG.agreements["KM-DFE-CIN-013"].lawful_basis.article_6 == "c"


def test_tour_outcomes_as_designed() -> None:
    def outcome(agreement_id: str, purpose: str, **flags: bool) -> Outcome:
        request = DisclosureRequest(
            agreement_id, purpose, frozenset({"nhs_number", "local_id"}), **flags
        )
        context = DecisionContext(TODAY, frozenset(CATALOG.agreements))
        return decide(request, CATALOG.agreements[agreement_id], context).outcome

    assert outcome("KM-GP-005", "direct_care") is Outcome.ALLOWED  # with a review warning
    assert outcome("KM-RSP-008", "direct_care") is Outcome.DENIED  # review > 90 days overdue
    assert outcome("KM-POL-S2-011", "law_enforcement_request", has_approval_facts=True) is (
        Outcome.NEEDS_APPROVAL
    )
