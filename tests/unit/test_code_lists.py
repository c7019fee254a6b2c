"""Code lists (rule 13): a coded field takes only its list's codes; anything else is refused
by path with `not_in_code_list`, never sent and never echoed."""

from __future__ import annotations

from datetime import date

import pytest

from agreements.code_lists import CODE_LISTS, CP_PLAN_CATEGORY
from agreements.dictionary import DICTIONARY, ValueType, lookup
from agreements.loader import default_catalog_dir, load_catalog
from agreements.minimise import minimise
from agreements.samples import adult_record, child_record
from agreements.transforms import FieldRefusal, refusal

CATALOG = load_catalog(default_catalog_dir())
KEY = b"code-lists-pseudonym-key!!!!"
TODAY = date(2026, 11, 25)


def test_every_coded_path_is_a_code_field_with_its_list() -> None:
    coded = {path for path, d in DICTIONARY.items() if d.type is ValueType.CODE}
    assert coded == set(CODE_LISTS)
    for path in coded:
        assert DICTIONARY[path].codes == CODE_LISTS[path]
        assert DICTIONARY[path].max_length is None
        assert all(code and code.strip() == code for code in CODE_LISTS[path])


def test_cp_plan_category_is_the_cin_census_list() -> None:
    assert {"neglect", "physical", "emotional", "sexual", "multiple"} == CP_PLAN_CATEGORY
    definition = lookup("social_care.cp_plan.category")
    assert definition is not None
    assert definition.to_dict()["codes"] == sorted(CP_PLAN_CATEGORY)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("neglect", None),
        ("multiple", None),
        ("Neglect", FieldRefusal.NOT_IN_CODE_LIST),  # codes compare exactly
        ("neglect by mother's partner", FieldRefusal.NOT_IN_CODE_LIST),
        ("", FieldRefusal.NOT_IN_CODE_LIST),
        (3, FieldRefusal.TYPE_MISMATCH),
        (["neglect"], FieldRefusal.TYPE_MISMATCH),
        (None, None),  # no value, nothing to leak
    ],
)
def test_refusal_of_a_code(value: object, expected: FieldRefusal | None) -> None:
    definition = lookup("social_care.cp_plan.category")
    assert definition is not None
    assert refusal(value, definition) is expected


def test_a_free_value_in_a_code_field_is_refused_by_path_never_by_value() -> None:
    record = child_record()
    record["social_care"]["cp_plan"]["category"] = "sexual abuse by uncle (name withheld)"
    agreement = CATALOG.agreements["KM-DFE-CIN-013"]
    result = minimise(record, agreement, "statutory_return", pseudonym_key=KEY, today=TODAY)
    assert {"path": "social_care.cp_plan.category", "code": "not_in_code_list"} in [
        item.to_dict() for item in result.refused
    ]
    assert "social_care.cp_plan.category" in result.removed
    assert "social_care.cp_plan.category" not in result.sent
    assert "category" not in result.data["social_care"].get("cp_plan", {})
    assert "uncle" not in repr(result)
    # The coded fields around it, with codes from their lists, still go.
    assert result.data["social_care"]["category_of_need"] == "N1"


@pytest.mark.parametrize("record", [child_record(), adult_record()], ids=["child", "adult"])
def test_the_sample_records_hold_only_listed_codes(record: dict[str, object]) -> None:
    seen: list[str] = []

    def walk(value: object, path: str) -> None:
        if isinstance(value, dict):
            for key, child in value.items():
                walk(child, f"{path}.{key}" if path else key)
        elif isinstance(value, list):
            for child in value:
                walk(child, f"{path}[*]")
        elif path in CODE_LISTS:
            seen.append(path)
            assert value in CODE_LISTS[path], path

    walk(record, "")
    assert seen  # each sample carries coded fields, so the check means something
