"""Minimisation: default deny, transforms, names-only reporting, subject identifiers."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from agreements.catalog_errors import MinimisationError
from agreements.loader import default_catalog_dir, load_catalog
from agreements.minimise import Minimised, minimise
from agreements.model import Agreement, FieldRule, Transform
from agreements.samples import adult_record, child_record
from agreements.transforms import REMOVE, age_band, postcode_district, pseudonymise, year_only

CATALOG = load_catalog(default_catalog_dir())
KEY = b"k" * 32
TODAY = date(2026, 11, 25)


def with_rules(*rules: tuple[str, str], purposes: tuple[str, ...] = ()) -> Agreement:
    base = CATALOG.agreements["KM-NHS-LAC-001"]
    fields = tuple(
        FieldRule.model_validate({"path": path, "transform": transform, "purposes": purposes})
        for path, transform in rules
    )
    return base.model_copy(update={"fields": fields})


def run(
    record: dict[str, Any],
    agreement: Agreement,
    purpose: str = "looked_after_children_health",
    **kw: Any,
) -> Minimised:
    return minimise(record, agreement, purpose, pseudonym_key=KEY, today=TODAY, **kw)


def test_only_permitted_fields_leave() -> None:
    record = {"identity": {"name": "A", "ethnicity": "X", "address": {"postcode": "ME4 4ZZ"}}}
    result = run(record, with_rules(("identity.name", "keep")))
    assert result.data == {"identity": {"name": "A"}}
    assert result.sent == ("identity.name",)
    assert result.removed == ("identity.ethnicity", "identity.address.postcode")


def test_fields_outside_the_dictionary_are_removed_and_reported() -> None:
    record = {"identity": {"name": "A", "shoe_size": 9}, "hobbies": ["chess"]}
    result = run(record, with_rules(("identity.name", "keep")))
    assert result.data == {"identity": {"name": "A"}}
    assert result.removed == ("identity.shoe_size", "hobbies[*]")


def test_lists_keep_only_permitted_keys_of_each_item() -> None:
    record = {"household": [{"name": "B", "relationship": "sister"}, {"name": "C"}]}
    result = run(record, with_rules(("household[*].relationship", "keep")))
    assert result.data == {"household": [{"relationship": "sister"}]}
    assert result.sent == ("household[*].relationship",)
    assert result.removed == ("household[*].name",)


def test_list_of_scalars() -> None:
    record = {"health": {"allergies": ["nuts", "penicillin"]}}
    result = run(record, with_rules(("health.allergies[*]", "keep")))
    assert result.data == record
    assert result.sent == ("health.allergies[*]",)


def test_a_container_where_a_leaf_is_permitted_is_refused_by_its_type() -> None:
    record = {"identity": {"name": {"given": "A", "family": "B"}}}
    result = run(record, with_rules(("identity.name", "keep")))
    assert result.data == {}
    assert result.removed == ("identity.name",)
    assert [r.to_dict() for r in result.refused] == [
        {"path": "identity.name", "code": "type_mismatch"}
    ]


def test_rules_for_other_purposes_do_not_apply() -> None:
    agreement = CATALOG.agreements["KM-KCC-OOH-009"]
    record = {"social_care": {"cp_plan": {"category": "neglect", "start_date": "2026-01-01"}}}
    emergency = run(record, agreement, "emergency")
    adults = run(record, agreement, "safeguarding_adults")
    assert "social_care.cp_plan.category" in emergency.sent
    assert "social_care.cp_plan.category" in adults.removed
    assert adults.data == {"social_care": {"cp_plan": {"start_date": "2026-01-01"}}}


def test_a_purpose_the_agreement_lacks_sends_nothing() -> None:
    result = run(child_record(), CATALOG.agreements["KM-NHS-LAC-001"], "research")
    assert result.data == {}
    assert result.sent == ()
    assert "identity.name" in result.removed


def test_transforms_are_applied() -> None:
    record = {
        "identity": {"date_of_birth": "2014-06-09", "address": {"postcode": "me7 1ab"}},
        "health": {"last_dental_check": "2026-02-11"},
        "services": {"social_care": [{"started_on": "2024-05-01"}]},
    }
    agreement = with_rules(
        ("identity.date_of_birth", "age_band"),
        ("identity.address.postcode", "postcode_district"),
        ("health.last_dental_check", "year_only"),
        ("services.social_care[*].started_on", "drop"),
    )
    result = run(record, agreement)
    assert result.data == {
        "identity": {"date_of_birth": "10-15", "address": {"postcode": "ME7"}},
        "health": {"last_dental_check": 2026},
    }
    assert "services.social_care[*].started_on" in result.removed


def test_a_value_a_transform_cannot_read_is_removed_not_leaked() -> None:
    record = {"identity": {"date_of_birth": "ninth of June", "address": {"postcode": "NOT ONE"}}}
    agreement = with_rules(
        ("identity.date_of_birth", "year_only"), ("identity.address.postcode", "postcode_district")
    )
    result = run(record, agreement)
    assert result.data == {}
    assert result.removed == ("identity.date_of_birth", "identity.address.postcode")


def test_pseudonyms_are_keyed_and_scoped_to_the_agreement() -> None:
    one = pseudonymise("999 000 0018", KEY, "A-1")
    assert one == pseudonymise("9990000018", KEY, "A-1")
    assert one != pseudonymise("9990000018", KEY, "B-1")
    assert one != pseudonymise("9990000018", b"j" * 32, "A-1")
    assert "9990000018" not in one
    assert len(one) == 64


def test_the_pseudonym_key_must_be_long_enough() -> None:
    with pytest.raises(MinimisationError, match="16 bytes") as caught:
        minimise({}, with_rules(), "direct_care", pseudonym_key=b"short", today=TODAY)
    assert caught.value.code == "minimisation_invalid"


def test_unit_transforms() -> None:
    assert year_only("2014-06-09T10:00:00Z") == 2014
    assert year_only(date(2014, 6, 9)) == 2014
    assert year_only(20140609) is REMOVE
    assert age_band("2008-11-26", TODAY) == "16-17"
    assert age_band("2008-11-25", TODAY) == "18-24"
    assert age_band("1930-01-01", TODAY) == "85+"
    assert age_band("2030-01-01", TODAY) is REMOVE
    assert postcode_district("SW1A 1AA") == "SW1A"
    assert postcode_district("ME4 4ZZ") == "ME4"
    assert postcode_district(12345) is REMOVE


def test_subject_identifiers_are_minimised() -> None:
    lac = CATALOG.agreements["KM-NHS-LAC-001"]  # nhs_number and local_id
    subject = {"nhs_number": "9990000018", "upn": "A123", "local_id": "MC-1"}
    result = run({}, lac, subject=subject)
    assert result.subject == {"nhs_number": "9990000018", "local_id": "MC-1"}
    assert result.sent == ("subject.nhs_number", "subject.local_id")
    assert result.removed == ("subject.upn",)


def test_subject_identifiers_are_pseudonymised_where_agreed() -> None:
    icb = CATALOG.agreements["KM-ICB-COM-004"]
    result = run({}, icb, "commissioning", subject={"nhs_number": "9990000018"})
    assert result.subject["nhs_number"] == pseudonymise("9990000018", KEY, icb.id)


def test_no_subject_identifier_leaves_for_a_purpose_not_permitted() -> None:
    lac = CATALOG.agreements["KM-NHS-LAC-001"]
    result = run({}, lac, "research", subject={"nhs_number": "9990000018"})
    assert result.subject == {}
    assert result.removed == ("subject.nhs_number",)


def test_unsafe_keys_are_never_reported_verbatim() -> None:
    record = {"Jordan Example lives at 1 Sample Street": 1, "identity": {"identity.name": "A"}}
    result = run(record, with_rules(("identity.name", "keep")))
    assert result.data == {}
    assert result.removed == ("<key>", "identity.<key>")


def test_reports_never_contain_values() -> None:
    for record, agreement_id in (
        (child_record(), "KM-NHS-LAC-001"),
        (adult_record(), "KM-DOM-006"),
    ):
        agreement = CATALOG.agreements[agreement_id]
        result = run(record, agreement, str(agreement.purposes[0]))
        report = json.dumps([result.sent, result.removed])
        for value in ("Jordan", "Morgan", "Example", "9990000018", "ME4", "penicillin"):
            assert value not in report


def test_minimise_does_not_change_the_record() -> None:
    record = adult_record()
    run(record, CATALOG.agreements["KM-DOM-006"], "direct_care")
    assert record == adult_record()


def test_keep_passes_scalars_and_iso_formats_dates() -> None:
    record = {"identity": {"date_of_birth": date(2014, 6, 9)}, "needs": {"care_hours_weekly": 14}}
    agreement = with_rules(("identity.date_of_birth", "keep"), ("needs.care_hours_weekly", "keep"))
    assert run(record, agreement).data == {
        "identity": {"date_of_birth": "2014-06-09"},
        "needs": {"care_hours_weekly": 14},
    }


def test_transform_enum_covers_every_documented_transform() -> None:
    assert {t.value for t in Transform} == {
        "keep",
        "year_only",
        "age_band",
        "postcode_district",
        "pseudonymise",
        "initials",
        "drop",
    }


def test_the_rule_index_follows_a_model_copy() -> None:
    lac = CATALOG.agreements["KM-NHS-LAC-001"]
    purpose = "looked_after_children_health"
    assert len(lac.rules_for(purpose)) == len(lac.fields)
    narrowed = lac.model_copy(update={"fields": lac.fields[:1]})
    assert list(narrowed.rules_for(purpose)) == [lac.fields[0].path]
    assert narrowed.rule_prefixes(purpose) == frozenset({"identity", "identity.name"})
    assert lac == lac.model_copy()
