"""Rules an agreement must meet to load, beyond its shape: the law, the dictionary, the catalog.

Pure functions returning every problem found, so one validation run reports them all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from agreements.catalog_errors import CatalogProblem
from agreements.dictionary import ValueType, lookup
from agreements.dpia import dpia_problems
from agreements.law import NEEDS_POLICY_DOCUMENT, SCHEDULE_1_FOR_ARTICLE_9, Article6
from agreements.model import (
    Agreement,
    ApprovalPolicy,
    ChannelType,
    FieldRule,
    OnwardSharing,
    OptOutBasis,
    Partner,
    Purpose,
    Tier,
    Transform,
)

BEYOND_INDIVIDUAL_CARE = frozenset({Purpose.COMMISSIONING, Purpose.PLANNING, Purpose.RESEARCH})
_DATE_TRANSFORMS = frozenset({Transform.YEAR_ONLY, Transform.AGE_BAND})
_Add = Callable[[str, str, str], None]  # (field, rule, message)


def agreement_problems(
    agreement: Agreement, source: str, partners: Mapping[str, Partner]
) -> list[CatalogProblem]:
    """Every rule this agreement breaks; an empty list means it may load."""
    problems: list[CatalogProblem] = []

    def add(field: str, rule: str, message: str) -> None:
        problems.append(CatalogProblem(source, field, rule, message))

    for name in ("purposes", "subject_identifiers"):
        if not getattr(agreement, name):
            add(name, "required", f"{name} must list at least one entry")
    partner = partners.get(agreement.partner)
    if partner is None:
        add("partner", "unknown_partner", f"partner {agreement.partner!r} is not in partners.yaml")
    _field_rules(agreement, add)
    _lawful_basis(agreement, add)
    _lifecycle(agreement, add)
    _terms(agreement, partner, add)
    problems += dpia_problems(agreement, source)
    return problems


def _field_rules(agreement: Agreement, add: _Add) -> None:
    seen: set[str] = set()
    for index, rule in enumerate(agreement.fields):
        where = f"fields[{index}]"
        definition = lookup(rule.path)
        if definition is None:
            add(f"{where}.path", "unknown_field", f"{rule.path!r} is not in the data dictionary")
            continue
        if rule.path in seen:
            add(f"{where}.path", "duplicate_field_rule", f"{rule.path!r} has two rules")
        seen.add(rule.path)
        extra = [str(p) for p in rule.purposes if p not in agreement.purposes]
        if extra:
            add(
                f"{where}.purposes",
                "field_purpose_not_in_agreement",
                f"{', '.join(extra)} is not one of the agreement's purposes",
            )
        if rule.transform in _DATE_TRANSFORMS and definition.type is not ValueType.DATE:
            add(f"{where}.transform", "transform_not_applicable", f"{rule.transform} needs a date")
        if rule.transform == Transform.POSTCODE_DISTRICT and not rule.path.endswith("postcode"):
            add(f"{where}.transform", "transform_not_applicable", "needs a postcode field")
        if definition.free_text and not rule.purposes and rule.transform != Transform.DROP:
            add(
                f"{where}.purposes",
                "free_text_needs_purposes",
                f"free-text field {rule.path!r} must name the purposes it may be sent for",
            )


def _sends(rule: FieldRule) -> bool:
    return rule.transform != Transform.DROP


def _lawful_basis(agreement: Agreement, add: _Add) -> None:
    basis = agreement.lawful_basis
    if basis.article_6 == Article6.LEGITIMATE_INTERESTS:
        add(
            "lawful_basis.article_6",
            "article_6_f_public_authority",
            "Article 6(1)(f) is not available to the council performing its tasks",
        )
    definitions = [lookup(rule.path) for rule in agreement.fields if _sends(rule)]
    special = sorted(d.path for d in definitions if d is not None and d.special_category)
    criminal = sorted(d.path for d in definitions if d is not None and d.criminal_offence)
    if special:
        if basis.article_9 is None:
            add(
                "lawful_basis.article_9",
                "article_9_missing",
                f"special category fields ({special[0]}, ...) need an Article 9(2) condition",
            )
        elif basis.article_9 in SCHEDULE_1_FOR_ARTICLE_9:
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


def _lifecycle(agreement: Agreement, add: _Add) -> None:
    if agreement.effective_to is not None and agreement.effective_to < agreement.effective_from:
        add("effective_to", "dates_out_of_order", "effective_to is before effective_from")
    if agreement.review_due < agreement.effective_from:
        add("review_due", "dates_out_of_order", "review_due is before effective_from")
    needs = agreement.tier == Tier.ONE_OFF or agreement.lawful_basis.exemption is not None
    if needs and agreement.approval != ApprovalPolicy.REQUIRED:
        add(
            "approval",
            "approval_must_be_required",
            "one-off and Schedule 2 agreements must set approval: required",
        )


def _terms(agreement: Agreement, partner: Partner | None, add: _Add) -> None:
    if agreement.onward_sharing == OnwardSharing.LISTED and not agreement.onward_recipients:
        add(
            "onward_recipients",
            "onward_recipients_missing",
            "onward_sharing: listed needs the recipients listed",
        )
    beyond = BEYOND_INDIVIDUAL_CARE.intersection(agreement.purposes)
    if beyond and agreement.national_data_opt_out == OptOutBasis.DIRECT_CARE:
        add(
            "national_data_opt_out",
            "opt_out_exemption_invalid",
            f"{sorted(beyond)[0]} goes beyond individual care: direct_care does not fit",
        )
    if partner is not None and partner.channel.type != ChannelType.MESH:
        for name in ("gzip", "workflow_id"):
            if getattr(agreement, name):
                add(name, "channel_setting_not_applicable", f"{name} applies to MESH partners only")
