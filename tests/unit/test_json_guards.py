"""The walks refusing what an envelope cannot carry name the first bad path, at any depth."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.application.commands import non_json_path, plainly_json
from gateway.http.schemas import NUL, DisclosureSubmission, nul_path


def _nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"child": [value]}
    return value


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"a": [1, "x", None, True, 2.5]}, None),
        ({"a": [1, {"b": float("inf")}]}, "record.a[*].b"),
        ({"a": {"c": 1}, "b": float("nan")}, "record.b"),
        ({1: 2}, "record"),
        ({"a": [{1, 2}]}, "record.a[*]"),
    ],
)
def test_non_json_values_are_named_by_path(value: Any, path: str | None) -> None:
    assert non_json_path(value) == path


def test_nul_is_found_in_values_and_keys() -> None:
    assert nul_path({"a": ["x", "y"]}) is None
    assert nul_path({"a": ["x", "y\x00"]}) == "a.1"
    assert nul_path({"a": {"k\x00": 1}}) == "a.<key>"


def test_deeper_than_the_recursion_limit_is_walked_not_crashed() -> None:
    assert non_json_path(_nested(5_000, 1)) is None
    assert non_json_path(_nested(5_000, float("inf"))) is not None
    assert nul_path(_nested(5_000, "fine")) is None
    assert nul_path(_nested(5_000, "\x00")) is not None


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(alphabet=st.sampled_from("ab\x00"), max_size=3)
    | st.tuples(st.integers())
    | st.frozensets(st.integers(), max_size=1)
)
_KEYS = st.text(alphabet=st.sampled_from("ab\x00"), max_size=3) | st.integers()
_VALUES = st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3)
)


@given(_VALUES)
def test_the_first_pass_clears_only_what_the_paths_would_clear(value: Any) -> None:
    """The cheap pass may send a value on to the path-finding walks, never let a bad one by."""
    if plainly_json(value):
        assert non_json_path(value) is None
    if plainly_json(value, free_of=NUL):
        assert non_json_path(value) is None
        assert nul_path(value) is None


@pytest.mark.parametrize(
    ("value", "plain", "free_of_nul"),
    [
        ({"a": [1, "x", None, True, 2.5, {"b": []}]}, True, True),
        ({"a": ["x\x00"]}, True, False),
        ({"a\x00": 1}, True, False),
        ({"a": float("nan")}, False, False),
        ({"a": (1,)}, False, False),
        ({1: "a"}, False, False),
    ],
)
def test_the_first_pass(value: Any, plain: bool, free_of_nul: bool) -> None:
    assert plainly_json(value) is plain
    assert plainly_json(value, free_of=NUL) is free_of_nul


def test_a_command_from_the_schema_says_its_record_was_checked() -> None:
    body = {
        "agreement": "KM-DOM-006",
        "purpose": "direct_care",
        "subject": {"local_id": "MC-A-000456"},
        "record": {"health": {"weight_kg": 70.5}},
        "requested_by": {"user": "sw-0099", "role": "care_manager"},
        "reason": "Test (synthetic)",
    }
    assert DisclosureSubmission.model_validate(body).to_command().record_checked
