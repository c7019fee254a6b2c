"""The lawful basis must fit the purposes, the partner and the data (AGREEMENTS.md rules 4, 9-12).

Called by `agreements.checks` when an agreement is loaded; every broken rule is reported with a
stable code naming it (docs/reason-codes.md lists them).
"""

from __future__ import annotations

from collections.abc import Callable

from agreements.dictionary import FieldDefinition, lookup
from agreements.law import (
    IMPOSES_OBLIGATION,
    NEEDS_POLICY_DOCUMENT,
    NOT_A_DISCLOSURE_POWER,
    PARTNER_CAN_REQUIRE,
    SCHEDULE_1_FOR_ARTICLE_9,
    Article6,
    Article9,
    Exemption,
    Schedule1Condition,
)
from agreements.model import Agreement, ApprovalPolicy, OptOutBasis, Partner, Tier, Transform
from agreements.vocabulary import (
    BEYOND_INDIVIDUAL_CARE,
    CASE_BY_CASE_KINDS,
    LAW_ENFORCEMENT,
    LEGAL_REQUIREMENT,
    RECIPIENTS_FOR,
    SAFEGUARDING,
    SCHEDULE_2_REQUESTS,
    STATUTORY_FUNCTIONS,
    Purpose,
)

Add = Callable[[str, str, str], None]  # (field, rule, message)
NOT_BY_CONSENT = LEGAL_REQUIREMENT | SAFEGUARDING | LAW_ENFORCEMENT
_CONSENT_CONDITION = Schedule1Condition.CONSENT.value


def basis_problems(agreement: Agreement, partner: Partner | None, add: Add) -> None:
    """Report every way the agreement's lawful basis does not fit what it shares."""
    _article_6(agreement, add)
    _consent(agreement, add)
    _special_and_criminal(agreement, add)
    if partner is not None:
        _recipient(agreement, partner, add)
        _case_by_case(agreement, partner, add)
    _approval(agreement, partner, add)
    _schedule_2_provision(agreement, add)
    _opt_out(agreement, add)


def _names(purposes: frozenset[Purpose]) -> str:
    return ", ".join(sorted(purposes))


def sent_definitions(agreement: Agreement) -> list[FieldDefinition]:
    """The dictionary entries of every field the agreement may send (dropped ones excluded)."""
    found = (lookup(rule.path) for rule in agreement.fields if rule.transform != Transform.DROP)
    return [definition for definition in found if definition is not None]


def _article_6(agreement: Agreement, add: Add) -> None:
    basis, purposes = agreement.lawful_basis, frozenset(agreement.purposes)
    where = "lawful_basis.article_6"
    if basis.article_6 == Article6.LEGITIMATE_INTERESTS:
        add(
            where,
            "article_6_f_public_authority",
            "Article 6(1)(f) is not available to the council performing its tasks",
        )
    statutory = purposes & STATUTORY_FUNCTIONS
    if basis.article_6 == Article6.CONTRACT and statutory:
        add(
            where,
            "contract_not_for_statutory_function",
            f"Article 6(1)(b) contract does not fit a statutory function ({_names(statutory)})",
        )
    if basis.article_6 == Article6.LEGAL_OBLIGATION and not IMPOSES_OBLIGATION.intersection(
        basis.gateways
    ):
        add(
            "lawful_basis.gateways",
            "legal_obligation_not_named",
            "Article 6(1)(c) must name the law that imposes the obligation to disclose "
            f"(one of {', '.join(sorted(IMPOSES_OBLIGATION))})",
        )
    if basis.article_6 == Article6.PUBLIC_TASK and not basis.gateways:
        add(
            "lawful_basis.gateways",
            "gateway_power_not_named",
            "Article 6(1)(e) must name the statutory gateway that gives the power to share",
        )
    for gateway in NOT_A_DISCLOSURE_POWER.intersection(basis.gateways):
        add(
            "lawful_basis.gateways",
            "gateway_not_a_disclosure_power",
            f"{gateway} empowers the council's own investigators to obtain information; "
            "it is no gateway for disclosing to a partner",
        )


def _consent(agreement: Agreement, add: Add) -> None:
    basis = agreement.lawful_basis
    purposes = frozenset(agreement.purposes) & NOT_BY_CONSENT
    if not purposes:
        return
    message = (
        "consent is never the basis for statutory, safeguarding or law-enforcement sharing "
        f"({_names(purposes)})"
    )
    if basis.article_6 == Article6.CONSENT:
        add("lawful_basis.article_6", "consent_not_for_purpose", message)
    if basis.article_9 == Article9.EXPLICIT_CONSENT:
        add("lawful_basis.article_9", "consent_not_for_purpose", message)
    if _CONSENT_CONDITION in {str(c) for c in basis.schedule_1}:
        add("lawful_basis.schedule_1", "consent_not_for_purpose", message)
    if _CONSENT_CONDITION in {str(r) for r in basis.article_10}:
        add("lawful_basis.article_10", "consent_not_for_purpose", message)


def _special_and_criminal(agreement: Agreement, add: Add) -> None:
    """Rule 4 (Article 9 with Schedule 1; Article 10 by any Schedule 1 condition) and rule 11."""
    basis = agreement.lawful_basis
    definitions = sent_definitions(agreement)
    special = sorted(d.path for d in definitions if d.special_category)
    criminal = sorted(d.path for d in definitions if d.criminal_offence)
    if special and basis.article_9 is None:
        add(
            "lawful_basis.article_9",
            "article_9_missing",
            f"special category fields ({special[0]}, ...) need an Article 9(2) condition",
        )
    elif special and basis.article_9 in SCHEDULE_1_FOR_ARTICLE_9:
        fitting = SCHEDULE_1_FOR_ARTICLE_9[basis.article_9]
        if not basis.schedule_1:
            add(
                "lawful_basis.schedule_1",
                "schedule_1_missing",
                f"Article 9(2)({basis.article_9}) needs a DPA 2018 Schedule 1 condition",
            )
        elif not fitting.intersection(basis.schedule_1):
            add(
                "lawful_basis.schedule_1",
                "schedule_1_mismatch",
                f"no condition listed fits Article 9(2)({basis.article_9}); "
                f"expected one of {', '.join(sorted(fitting))}",
            )
    crime = frozenset(agreement.purposes) & LAW_ENFORCEMENT
    if basis.article_9 == Article9.HEALTH_OR_SOCIAL_CARE and crime:
        add(
            "lawful_basis.article_9",
            "article_9_h_not_for_crime",
            f"Article 9(2)(h) covers health and social care, not {_names(crime)}: use 9(2)(g) "
            "with a Schedule 1 Part 2 condition (para 10 or 18) and a policy document",
        )
    if criminal and not basis.article_10:
        add(
            "lawful_basis.article_10",
            "article_10_missing",
            f"criminal offence data ({criminal[0]}, ...) needs an Article 10 route",
        )
    relied_on = {str(c) for c in basis.schedule_1} | {str(r) for r in basis.article_10}
    if relied_on & NEEDS_POLICY_DOCUMENT and not basis.appropriate_policy_document:
        add(
            "lawful_basis.appropriate_policy_document",
            "policy_document_missing",
            "a Schedule 1 para 1 or Part 2 condition needs an appropriate policy document",
        )


def _recipient(agreement: Agreement, partner: Partner, add: Add) -> None:
    for purpose in agreement.purposes:
        allowed = RECIPIENTS_FOR.get(purpose)
        if allowed is not None and partner.kind not in allowed:
            add(
                "partner",
                "partner_kind_cannot_receive",
                f"a {partner.kind} partner cannot lawfully receive for {purpose}",
            )


def needs_case_by_case_approval(agreement: Agreement, partner: Partner) -> bool:
    """Rule 10: a Schedule 2 request, or police/DWP sharing for anything but safeguarding."""
    purposes = frozenset(agreement.purposes)
    if purposes & SCHEDULE_2_REQUESTS:
        return True
    return partner.kind in CASE_BY_CASE_KINDS and bool(purposes - SAFEGUARDING)


def _approval(agreement: Agreement, partner: Partner | None, add: Add) -> None:
    """Rules 5 and 10: who must set `approval: required` (one problem, the most specific)."""
    if agreement.approval == ApprovalPolicy.REQUIRED:
        return
    if partner is not None and needs_case_by_case_approval(agreement, partner):
        add(
            "approval",
            "case_by_case_approval_missing",
            "police, DWP and Schedule 2 requests are approved case by case: "
            "set approval: required (whatever the tier)",
        )
    elif agreement.tier == Tier.ONE_OFF or agreement.lawful_basis.exemption is not None:
        add(
            "approval",
            "approval_must_be_required",
            "one-off and Schedule 2 agreements must set approval: required",
        )


def _case_by_case(agreement: Agreement, partner: Partner, add: Add) -> None:
    if not needs_case_by_case_approval(agreement, partner):
        return
    if agreement.lawful_basis.exemption is None:
        add(
            "lawful_basis.exemption",
            "schedule_2_provision_missing",
            "name the Schedule 2 Part 1 provision relied on: sch2_p2 (crime and taxation), "
            "or sch2_p5 where the partner can require the data",
        )


def _schedule_2_provision(agreement: Agreement, add: Add) -> None:
    basis = agreement.lawful_basis
    if basis.exemption == Exemption.REQUIRED_BY_LAW and (
        basis.article_6 != Article6.LEGAL_OBLIGATION
        or not PARTNER_CAN_REQUIRE.intersection(basis.gateways)
    ):
        add(
            "lawful_basis.exemption",
            "schedule_2_p5_needs_power_to_require",
            "Schedule 2 para 5 needs Article 6(1)(c) and the power by which the partner can "
            f"require the data (one of {', '.join(sorted(PARTNER_CAN_REQUIRE))})",
        )
    if (
        basis.exemption == Exemption.CRIME_AND_TAXATION
        and basis.article_6 == Article6.LEGAL_OBLIGATION
    ):
        add(
            "lawful_basis.exemption",
            "schedule_2_p2_is_voluntary",
            "Schedule 2 para 2 permits a voluntary disclosure; a legal obligation is para 5",
        )


def _opt_out(agreement: Agreement, add: Add) -> None:
    """Rule 9: the declaration must agree with the purposes and the data."""
    declared = agreement.national_data_opt_out
    beyond = BEYOND_INDIVIDUAL_CARE.intersection(agreement.purposes)
    where = "national_data_opt_out"
    if beyond and declared == OptOutBasis.DIRECT_CARE:
        add(
            where,
            "opt_out_exemption_invalid",
            f"{sorted(beyond)[0]} goes beyond individual care: direct_care does not fit",
        )
    if not beyond and declared == OptOutBasis.APPLIES:
        add(
            where,
            "opt_out_applies_to_no_purpose",
            "the opt-out applies only to planning, commissioning and research; "
            "none is a purpose of this agreement",
        )
    care = sorted(d.path for d in sent_definitions(agreement) if d.health_or_care)
    if care and declared == OptOutBasis.NOT_PATIENT_DATA:
        add(
            where,
            "opt_out_not_patient_data_contradicted",
            f"health or care fields are sent ({care[0]}, ...): this is patient data",
        )
