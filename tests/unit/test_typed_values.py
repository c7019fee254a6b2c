"""Typed values (rule 13): a value of the wrong type or length never leaves, and is reported.

Properties over random records, worked cases from the review ("1234 (key safe code)" in a
yes/no field, a diagnosis in a date of birth), and the `initials` transform.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agreements.dictionary import DICTIONARY, FieldDefinition, ValueType, lookup
from agreements.loader import default_catalog_dir, load_catalog
from agreements.minimise import minimise
from agreements.model import Agreement, FieldRule, Transform
from agreements.nhs_number import nhs_number_valid
from agreements.transforms import REMOVE, FieldRefusal, initials, refusal

CATALOG = load_catalog(default_catalog_dir())
KEY = b"typed-values-pseudonym-key!!"
TODAY = date(2026, 11, 25)
PATHS = sorted(DICTIONARY)
# Every dictionary path permitted as it is, so only the type check can stop a value.
EVERYTHING: Agreement = CATALOG.agreements["KM-NHS-DIS-003"].model_copy(
    update={"fields": tuple(FieldRule(path=path) for path in PATHS)}
)
PURPOSE = "hospital_discharge"


def _build(parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    if parts[0] == "[*]":
        return [_build(parts[1:], value)]
    return {parts[0]: _build(parts[1:], value)}


def _insert(record: dict[str, Any], path: str, value: Any) -> None:
    """Put one value at a dictionary path (each list gets its own one-item list)."""
    parts = re.findall(r"[a-z_0-9]+|\[\*\]", path)
    node: Any = record
    for index, part in enumerate(parts[:-1]):
        if parts[index + 1] == "[*]" or part == "[*]":
            break
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            return
    else:
        node[parts[-1]] = value
        return
    rest = parts[index:]
    if isinstance(node, dict) and rest[0] not in node:
        node[rest[0]] = _build(rest[1:], value)


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _leaves(child, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for child in value:
            yield from _leaves(child, f"{path}[*]")
    else:
        yield path, value


not_text = st.one_of(
    st.integers(), st.floats(allow_nan=False), st.booleans(), st.lists(st.integers(), max_size=2)
)
text_not_date = st.text(max_size=30).filter(
    lambda t: refusal(t, DICTIONARY["identity.date_of_birth"]) is not None
)


def wrong_value(definition: FieldDefinition) -> st.SearchStrategy[Any]:
    """Values that are not of the field's type (or too long for it)."""
    kind = definition.type
    if kind is ValueType.STRING:
        assert definition.max_length is not None
        too_long = st.text(min_size=definition.max_length + 1, max_size=definition.max_length + 5)
        return st.one_of(not_text, st.dictionaries(st.just("x"), st.text(), max_size=1), too_long)
    if kind is ValueType.CODE:
        not_a_code = st.text(max_size=30).filter(lambda t: t not in definition.codes)
        return st.one_of(not_text, not_a_code)
    if kind is ValueType.BOOLEAN:
        return st.one_of(st.text(max_size=30), st.integers(), st.floats(allow_nan=False))
    if kind is ValueType.NUMBER:
        return st.one_of(st.text(max_size=30), st.booleans(), st.lists(st.integers(), max_size=2))
    return st.one_of(text_not_date, st.integers(), st.booleans(), st.just("2020-01-01 diabetes"))


def right_value(definition: FieldDefinition) -> st.SearchStrategy[Any]:
    kind = definition.type
    if kind is ValueType.STRING:
        return st.text(max_size=min(definition.max_length or 10, 10))
    if kind is ValueType.CODE:
        return st.sampled_from(sorted(definition.codes))
    if kind is ValueType.BOOLEAN:
        return st.booleans()
    if kind is ValueType.NUMBER:
        return st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False))
    return st.dates().map(date.isoformat)


@st.composite
def typed_records(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A record, and the wrong-typed values placed in it by path."""
    record: dict[str, Any] = {}
    wrong: dict[str, Any] = {}
    for path in draw(st.lists(st.sampled_from(PATHS), max_size=30, unique=True)):
        definition = DICTIONARY[path]
        if draw(st.booleans()):
            value = draw(wrong_value(definition))
            wrong[path] = value
        else:
            value = draw(right_value(definition))
        _insert(record, path, value)
    return record, wrong


@settings(max_examples=300, deadline=None)
@given(typed_records())
def test_no_wrong_typed_value_is_ever_in_the_minimised_output(
    drawn: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    record, wrong = drawn
    result = minimise(record, EVERYTHING, PURPOSE, pseudonym_key=KEY, today=TODAY)
    for path, value in _leaves(result.data):
        assert refusal(value, DICTIONARY[path]) is None, path
    refused = {item.path for item in result.refused}
    placed = {path for path, _ in _leaves(record)}
    for path in wrong:
        if path in placed:  # not shadowed by a sibling inserted first
            assert path in refused, path
            assert path in result.removed
    assert refused <= set(result.removed)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(CATALOG.agreements)), typed_records())
def test_catalog_agreements_never_send_a_wrong_typed_value(
    agreement_id: str, drawn: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    agreement = CATALOG.agreements[agreement_id]
    for purpose in agreement.purposes:
        result = minimise(drawn[0], agreement, purpose, pseudonym_key=KEY, today=TODAY)
        kept = agreement.rules_for(purpose)
        for path, value in _leaves(result.data):
            if kept.get(path) == Transform.KEEP:
                assert refusal(value, DICTIONARY[path]) is None, path


def test_the_reviewers_examples_are_refused_by_path_never_by_value() -> None:
    record = {
        "identity": {"name": "Morgan Example", "date_of_birth": "diagnosis: type 2 diabetes"},
        "accommodation": {"key_safe": "1234 (key safe code)", "type": "bungalow"},
        "needs": {"care_hours_weekly": "14 hours"},
    }
    agreement = CATALOG.agreements["KM-DOM-006"]
    result = minimise(record, agreement, "direct_care", pseudonym_key=KEY, today=TODAY)
    assert result.data == {
        "identity": {"name": "Morgan Example"},
        "accommodation": {"type": "bungalow"},
    }
    assert [item.to_dict() for item in result.refused] == [
        {"path": "identity.date_of_birth", "code": "type_mismatch"},
        {"path": "accommodation.key_safe", "code": "type_mismatch"},
        {"path": "needs.care_hours_weekly", "code": "type_mismatch"},
    ]
    assert "1234" not in repr(result.refused)
    assert {"identity.date_of_birth", "accommodation.key_safe"} <= set(result.removed)


def test_a_string_longer_than_its_field_is_refused_not_truncated() -> None:
    definition = lookup("identity.address.postcode")
    assert definition is not None
    assert definition.max_length == 8
    assert refusal("ME7 1ZZ", definition) is None
    assert refusal("ME7 1ZZ and more", definition) is FieldRefusal.TOO_LONG
    record = {"identity": {"address": {"postcode": "ME7 1ZZ and more"}}}
    agreement = CATALOG.agreements["KM-DOM-006"]
    result = minimise(record, agreement, "direct_care", pseudonym_key=KEY, today=TODAY)
    assert result.data == {}
    assert [item.to_dict() for item in result.refused] == [
        {"path": "identity.address.postcode", "code": "too_long"}
    ]


@pytest.mark.parametrize(
    ("value", "kind", "ok"),
    [
        ("2026-11-25", ValueType.DATE, True),
        ("2026-11-25T10:00:00Z", ValueType.DATE, True),
        (date(2026, 11, 25), ValueType.DATE, True),
        (datetime(2026, 11, 25, 10, 0), ValueType.DATE, True),
        ("2026-02-30", ValueType.DATE, False),
        ("2026-11-25 diabetes", ValueType.DATE, False),
        (20261125, ValueType.DATE, False),
        (True, ValueType.BOOLEAN, True),
        (1, ValueType.BOOLEAN, False),
        ("yes", ValueType.BOOLEAN, False),
        (14, ValueType.NUMBER, True),
        (81.5, ValueType.NUMBER, True),
        (True, ValueType.NUMBER, False),
        (float("inf"), ValueType.NUMBER, False),
        ("14", ValueType.NUMBER, False),
        ("text", ValueType.STRING, True),
        (12345, ValueType.STRING, False),
        (None, ValueType.BOOLEAN, True),  # no value, nothing to leak
    ],
)
def test_refusal_by_type(value: Any, kind: ValueType, ok: bool) -> None:
    definition = next(d for d in DICTIONARY.values() if d.type is kind)
    assert (refusal(value, definition) is None) is ok


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Jordan Example", "JE"), ("mary-jane  o'neil", "MJO"), ("  Ada  ", "A")],
)
def test_initials(name: str, expected: str) -> None:
    assert initials(name) == expected


def test_initials_transform_in_minimisation() -> None:
    agreement = EVERYTHING.model_copy(
        update={"fields": (FieldRule(path="identity.name", transform=Transform.INITIALS),)}
    )
    record = {"identity": {"name": "Jordan Example"}}
    result = minimise(record, agreement, PURPOSE, pseudonym_key=KEY, today=TODAY)
    assert result.data == {"identity": {"name": "JE"}}
    assert initials("   ") is REMOVE


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("9434765919", True),
        ("9990000018", True),
        ("9434765918", False),  # check digit off by one
        ("9990000000", False),  # check digit would be 10: never issued
        ("943476591", False),
        ("94347659190", False),
        ("943476591x", False),
        ("٩٤٣٤٧٦٥٩١٩", False),  # Arabic-Indic digits: not ASCII
    ],
)
def test_nhs_number_modulus_11(number: str, valid: bool) -> None:
    assert nhs_number_valid(number) is valid
