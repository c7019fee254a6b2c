"""The decision: every rule, every reason code, all reasons collected."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from agreements.decision import (
    REVIEW_GRACE_DAYS,
    DecisionContext,
    DisclosureRequest,
    Outcome,
    decide,
)
from agreements.loader import default_catalog_dir, load_catalog
from agreements.model import Agreement
from agreements.reasons import MEANINGS, Reason, meaning

CATALOG = load_catalog(default_catalog_dir())
TODAY = date(2026, 11, 25)
LAC = "KM-NHS-LAC-001"
ALL = frozenset(CATALOG.agreements)


def agreement(agreement_id: str = LAC, **update: Any) -> Agreement:
    found = CATALOG.agreements[agreement_id]
    return found.model_copy(update=update) if update else found


def request(
    agreement_id: str = LAC,
    purpose: str = "looked_after_children_health",
    identifiers: frozenset[str] = frozenset({"nhs_number"}),
    **flags: bool,
) -> DisclosureRequest:
    return DisclosureRequest(agreement_id, purpose, identifiers, **flags)


def context(today: date = TODAY, **changes: Any) -> DecisionContext:
    return DecisionContext(today, changes.pop("client_agreements", ALL), **changes)


def test_an_active_agreement_in_date_allows() -> None:
    decision = decide(request(), agreement(), context())
    assert decision.outcome is Outcome.ALLOWED
    assert decision.allowed
    assert decision.reasons == ()
    assert decision.warnings == ()
    assert (decision.agreement_id, decision.agreement_version) == (LAC, 3)


def test_unknown_agreement_is_denied() -> None:
    decision = decide(request("NOPE-1"), None, context(client_agreements=frozenset({"NOPE-1"})))
    assert decision.outcome is Outcome.DENIED
    assert decision.reasons == ("agreement_not_found",)


def test_unknown_agreement_reports_other_applicable_reasons_too() -> None:
    decision = decide(request("NOPE-1", "gossip"), None, context())
    assert decision.reasons == ("agreement_not_found", "client_not_authorised", "unknown_purpose")


@pytest.mark.parametrize("status", ["draft", "suspended", "expired", "terminated"])
def test_only_active_agreements_allow(status: str) -> None:
    decision = decide(request(), agreement(status=status), context())
    assert decision.reasons == ("agreement_not_active",)


def test_before_effective_from_is_denied() -> None:
    decision = decide(request(), agreement(), context(date(2026, 3, 31)))
    assert decision.reasons == ("agreement_not_yet_effective",)
    assert decide(request(), agreement(), context(date(2026, 4, 1))).allowed


def test_after_effective_to_is_denied() -> None:
    decision = decide(request(), agreement(review_due=date(2028, 6, 1)), context(date(2028, 4, 1)))
    assert decision.reasons == ("agreement_expired",)
    assert decide(
        request(), agreement(review_due=date(2028, 6, 1)), context(date(2028, 3, 31))
    ).allowed


def test_review_overdue_warns_for_90_days_then_denies() -> None:
    due = agreement().review_due
    on_due = decide(request(), agreement(), context(due))
    assert on_due.allowed
    assert on_due.warnings == ()
    late = decide(request(), agreement(), context(due + timedelta(days=REVIEW_GRACE_DAYS)))
    assert late.allowed
    assert late.warnings == ("agreement_review_overdue",)
    too_late = decide(request(), agreement(), context(due + timedelta(days=REVIEW_GRACE_DAYS + 1)))
    assert too_late.outcome is Outcome.DENIED
    assert too_late.reasons == ("agreement_review_overdue",)
    assert too_late.warnings == ()


def test_purpose_not_in_the_agreement_is_denied() -> None:
    decision = decide(request(purpose="research"), agreement(), context())
    assert decision.reasons == ("purpose_not_permitted",)


def test_unknown_purpose_is_denied_as_unknown() -> None:
    decision = decide(request(purpose="curiosity"), agreement(), context())
    assert decision.reasons == ("unknown_purpose",)


def test_client_not_authorised_for_the_agreement_is_denied() -> None:
    decision = decide(request(), agreement(), context(client_agreements=frozenset({"KM-GP-005"})))
    assert decision.reasons == ("client_not_authorised",)


def test_missing_subject_identifier_is_denied() -> None:
    decision = decide(request(identifiers=frozenset({"upn"})), agreement(), context())
    assert decision.reasons == ("subject_identifier_missing",)


def test_any_one_of_the_agreed_identifiers_is_enough() -> None:
    assert decide(request(identifiers=frozenset({"local_id"})), agreement(), context()).allowed


def test_national_data_opt_out_denies_where_it_applies() -> None:
    icb = request("KM-ICB-COM-004", "commissioning")
    decision = decide(icb, agreement("KM-ICB-COM-004"), context(subject_opted_out=True))
    assert decision.reasons == ("national_data_opt_out",)
    assert decide(icb, agreement("KM-ICB-COM-004"), context()).allowed


def test_opt_out_is_not_used_where_an_exemption_applies() -> None:
    assert decide(request(), agreement(), context(subject_opted_out=True)).allowed


def test_opt_out_check_needs_the_nhs_number() -> None:
    icb = agreement("KM-ICB-COM-004", subject_identifiers=("nhs_number", "local_id"))
    decision = decide(
        request("KM-ICB-COM-004", "commissioning", frozenset({"local_id"})), icb, context()
    )
    assert decision.reasons == ("subject_identifier_missing",)


def test_partner_without_a_valid_key_is_denied() -> None:
    decision = decide(request(), agreement(), context(partner_has_valid_key=False))
    assert decision.reasons == ("partner_key_missing",)


def test_schedule_2_request_with_facts_needs_approval() -> None:
    police = request("KM-POL-S2-011", "law_enforcement_request", has_approval_facts=True)
    decision = decide(police, agreement("KM-POL-S2-011"), context())
    assert decision.outcome is Outcome.NEEDS_APPROVAL
    assert decision.reasons == ("approval_required",)
    assert decision.approval_required


def test_schedule_2_request_without_facts_is_denied() -> None:
    police = request("KM-POL-S2-011", "law_enforcement_request")
    decision = decide(police, agreement("KM-POL-S2-011"), context())
    assert decision.outcome is Outcome.DENIED
    assert decision.reasons == ("approval_facts_missing", "approval_required")


def test_an_approved_request_is_allowed() -> None:
    police = request(
        "KM-POL-S2-011", "law_enforcement_request", has_approval_facts=True, approval_granted=True
    )
    decision = decide(police, agreement("KM-POL-S2-011"), context())
    assert decision.outcome is Outcome.ALLOWED
    assert decision.approval_required


def test_an_approval_does_not_override_a_denial() -> None:
    police = request(
        "KM-POL-S2-011", "law_enforcement_request", has_approval_facts=True, approval_granted=True
    )
    decision = decide(police, agreement("KM-POL-S2-011", status="suspended"), context())
    assert decision.reasons == ("agreement_not_active",)


def test_one_off_tier_alone_needs_approval() -> None:
    one_off = agreement(tier="one_off")
    assert decide(request(has_approval_facts=True), one_off, context()).outcome is (
        Outcome.NEEDS_APPROVAL
    )


def test_every_applicable_reason_is_collected() -> None:
    expired = agreement("EXAMPLE-EXPIRED-001")
    decision = decide(
        request("EXAMPLE-EXPIRED-001", "research", frozenset()),
        expired,
        context(client_agreements=frozenset(), partner_has_valid_key=False),
    )
    assert set(decision.reasons) == {
        "client_not_authorised",
        "agreement_not_active",
        "agreement_expired",
        "agreement_review_overdue",
        "purpose_not_permitted",
        "subject_identifier_missing",
        "partner_key_missing",
    }


def test_a_request_for_another_agreement_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="not the one"):
        decide(request("KM-GP-005"), agreement(), context())


def test_reason_codes_are_plain_strings() -> None:
    decision = decide(request(purpose="research"), agreement(), context())
    assert type(decision.reasons[0]) is str


def test_every_reason_has_a_meaning() -> None:
    assert set(MEANINGS) == set(Reason)
    assert meaning("national_data_opt_out").startswith("The subject has opted out")
    assert meaning("nonsense") == "Unknown reason code."


def test_reason_codes_are_documented() -> None:
    text = (default_catalog_dir().parents[1] / "docs" / "reason-codes.md").read_text()
    section = text.split("## Policy decision", 1)[1]
    for reason in Reason:
        assert f"- `{reason.value}`:" in section


def test_a_partner_on_a_channel_that_cannot_deliver_is_denied() -> None:
    ctx = context(partner_channel="email", deliverable_channels=frozenset({"webhook", "mesh"}))
    decision = decide(request(), agreement(), ctx)
    assert decision.outcome is Outcome.DENIED
    assert decision.reasons == ("partner_channel_unavailable",)


def test_a_partner_on_a_deliverable_channel_is_not_held_back() -> None:
    ctx = context(partner_channel="mesh", deliverable_channels=frozenset({"webhook", "mesh"}))
    assert decide(request(), agreement(), ctx).allowed
