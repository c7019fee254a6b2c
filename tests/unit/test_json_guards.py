"""The walks refusing what an envelope cannot carry name the first bad path, at any depth."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.application.commands import non_json_path
from gateway.http.schemas import nul_path


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
