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
