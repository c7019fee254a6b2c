"""The cheap bound on a body's JSON values never undercounts, and the exact count stops early."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.http.submission_body import (
    BodyRefused,
    more_values_than,
    parse_submission,
    values_at_most,
)

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=':,[]{}"ab'),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(alphabet=":,[ab", max_size=3), children, max_size=5)
    ),
    max_leaves=30,
)


def _count(value: Any) -> int:
    if isinstance(value, dict):
        return len(value) + sum(_count(v) for v in value.values())
    if isinstance(value, list):
        return len(value) + sum(_count(v) for v in value)
    return 0


@given(_json_values)
def test_the_byte_bound_is_never_below_the_values(value: Any) -> None:
    raw = json.dumps(value).encode()
    exact = _count(value)
    assert values_at_most(raw) >= exact
    if exact:
        assert more_values_than(value, exact - 1)
    assert not more_values_than(value, exact)


def test_a_body_of_many_values_is_refused_before_validation() -> None:
    raw = json.dumps({"record": {f"k{i}": i for i in range(500)}}).encode()
    refused = parse_submission(raw, max_values=100)
    assert isinstance(refused, BodyRefused)
    assert (refused.status, refused.code, refused.detail) == (
        413,
        "body_too_many_values",
        "limit 100 values",
    )
    # Under the limit the same body reaches the schema, which refuses its missing fields.
    checked = parse_submission(raw, max_values=1000)
    assert isinstance(checked, BodyRefused)
    assert checked.code == "body_invalid"
