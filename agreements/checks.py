"""Rules an agreement must meet to load, beyond its shape: the law, the dictionary, the catalog.

Pure functions returning every problem found, so one validation run reports them all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from agreements.basis_checks import basis_problems
from agreements.catalog_errors import CatalogProblem
from agreements.dictionary import ValueType, lookup
from agreements.dpia import dpia_problems
from agreements.model import (
    Agreement,
    ChannelType,
    OnwardSharing,
    Partner,
    Transform,
)

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
    basis_problems(agreement, partner, add)
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
        if rule.transform == Transform.INITIALS and not definition.person_name:
            add(f"{where}.transform", "transform_not_applicable", "initials needs a name field")
        if definition.free_text and not rule.purposes and rule.transform != Transform.DROP:
            add(
                f"{where}.purposes",
                "free_text_needs_purposes",
                f"free-text field {rule.path!r} must name the purposes it may be sent for",
            )


def _lifecycle(agreement: Agreement, add: _Add) -> None:
    if agreement.effective_to is not None and agreement.effective_to < agreement.effective_from:
        add("effective_to", "dates_out_of_order", "effective_to is before effective_from")
    if agreement.review_due < agreement.effective_from:
        add("review_due", "dates_out_of_order", "review_due is before effective_from")


def _terms(agreement: Agreement, partner: Partner | None, add: _Add) -> None:
    if agreement.onward_sharing == OnwardSharing.LISTED and not agreement.onward_recipients:
        add(
            "onward_recipients",
            "onward_recipients_missing",
            "onward_sharing: listed needs the recipients listed",
        )
    if partner is not None and partner.channel.type != ChannelType.MESH:
        for name in ("gzip", "workflow_id"):
            if getattr(agreement, name):
                add(name, "channel_setting_not_applicable", f"{name} applies to MESH partners only")
