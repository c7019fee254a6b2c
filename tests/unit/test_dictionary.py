"""The data dictionary: complete, well-formed, flags where the law needs them."""

from __future__ import annotations

import pytest

from agreements.dictionary import DICTIONARY, PATH_PATTERN, Category, ValueType, entries, lookup


def test_every_path_is_a_well_formed_leaf_path() -> None:
    for definition in entries():
        assert PATH_PATTERN.fullmatch(definition.path), definition.path
        assert DICTIONARY[definition.path] is definition


def test_no_path_is_a_prefix_of_another() -> None:
    paths = set(DICTIONARY)
    for path in paths:
        assert not any(
            other.startswith(path + ".") or other.startswith(path + "[") for other in paths
        )


def test_every_category_of_the_privacy_notice_is_covered() -> None:
    assert {definition.category for definition in entries()} == set(Category)


def test_every_value_type_is_used() -> None:
    assert {definition.type for definition in entries()} == set(ValueType)


@pytest.mark.parametrize(
    ("path", "flag"),
    [
        ("identity.ethnicity", "special_category"),
        ("beliefs.religion", "special_category"),
        ("health.diagnoses[*].code", "special_category"),
        ("youth_offending.convictions[*].offence", "criminal_offence"),
        ("household[*].name", "third_party"),
        ("relatives[*].phone", "third_party"),
        ("case_notes[*].text", "free_text"),
        ("case_notes[*].text", "special_category"),
    ],
)
def test_sensitive_fields_are_flagged(path: str, flag: str) -> None:
    definition = lookup(path)
    assert definition is not None
    assert getattr(definition, flag) is True


def test_ordinary_identity_fields_are_not_special() -> None:
    name = lookup("identity.name")
    assert name is not None
    assert (name.special_category, name.criminal_offence, name.third_party) == (False,) * 3


def test_lookup_of_an_unknown_or_container_path_is_none() -> None:
    assert lookup("identity.shoe_size") is None
    assert lookup("identity.address") is None
    assert lookup("household[*]") is None


def test_to_dict_has_the_documented_keys() -> None:
    keys = set(entries()[0].to_dict())
    assert {
        "path",
        "category",
        "type",
        "special_category",
        "criminal_offence",
        "third_party",
        "free_text",
    } <= keys


@pytest.mark.parametrize(
    ("path", "flag"),
    [
        ("legal.dols_authorised", "special_category"),
        ("needs.personal_care", "special_category"),
        ("social_care.category_of_need", "special_category"),
        ("education.ehcp", "special_category"),
        ("social_care.cp_plan.category", "criminal_offence"),
        ("social_care.safeguarding[*].type", "criminal_offence"),
        ("risks[*].description", "special_category"),
        ("risks[*].description", "criminal_offence"),
        ("goals[*].description", "criminal_offence"),
    ],
)
def test_fields_are_flagged_by_what_they_reveal(path: str, flag: str) -> None:
    definition = lookup(path)
    assert definition is not None
    assert getattr(definition, flag) is True


def test_every_free_text_field_is_treated_like_case_notes() -> None:
    notes = lookup("case_notes[*].text")
    assert notes is not None
    free = [d for d in entries() if d.free_text]
    assert len(free) >= 6
    for definition in free:
        assert (definition.special_category, definition.criminal_offence) == (
            notes.special_category,
            notes.criminal_offence,
        ), definition.path


def test_every_string_has_a_maximum_length_and_nothing_else_does() -> None:
    for definition in entries():
        if definition.type is ValueType.STRING:
            assert definition.max_length is not None, definition.path
            assert definition.max_length > 0
        else:
            assert definition.max_length is None, definition.path
    nhs = lookup("identity.nhs_number")
    assert nhs is not None
    assert nhs.max_length == 10


def test_health_or_care_fields_are_patient_data_and_identity_alone_is_not() -> None:
    for path in ("health.allergies[*]", "needs.mobility", "legal.dols_authorised"):
        definition = lookup(path)
        assert definition is not None
        assert definition.health_or_care, path
    for path in (
        "identity.name",
        "identity.ethnicity",
        "beliefs.religion",
        "finance.benefits[*].type",
    ):
        definition = lookup(path)
        assert definition is not None
        assert not definition.health_or_care, path
