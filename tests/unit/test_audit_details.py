"""Audit details carry names and codes only: what `pending_row` refuses, wherever it sits."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import audit_entry as audit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CLIENT = audit.Actor(audit.ActorKind.CLIENT, "c")
LONG = "x" * (audit.MAX_DETAIL_TEXT + 1)


def _row(details: dict[str, Any]) -> dict[str, Any]:
    return audit.pending_row(CLIENT, "disclosure.accepted", at=T0, details=details)


def test_codes_names_numbers_and_nesting_pass() -> None:
    details = {
        "fields_sent": ["person.name", "household[*].age"],
        "key_ids": ("kid-1", "kid-2"),
        "requested_by": {"user": "u", "role": "r"},
        "attempt": 3,
        "final": True,
        "approver": None,
        "nested": [["a", 1], {"b": ["c"]}],
    }
    assert _row(details)["details"] == audit.canonical(details)


@pytest.mark.parametrize(
    ("details", "message"),
    [
        ({"note": LONG}, r"details\.note: text too long"),
        ({"fields": ["ok", LONG]}, r"details\.fields: text too long"),
        ({"fields": [["ok", LONG]]}, r"details\.fields: text too long"),
        ({"outer": {"inner": [LONG]}}, r"details\.outer\.inner: text too long"),
        ({"fields": ["ok", 1.5]}, r"details\.fields: only strings"),
        ({"fields": [{"when": T0}]}, r"details\.fields\.when: only strings"),
        ({"amount": 1.5}, r"details\.amount: only strings"),
        ({"raw": b"bytes"}, r"details\.raw: only strings"),
    ],
)
def test_free_text_and_other_types_are_refused(details: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _row(details)


# What audit entries may hold (strings of any code point, integers of any size, booleans, None,
# lists and maps), nested: the canonical spelling must be the one every chain was hashed with.
_ascii = st.text(st.characters(max_codepoint=127))  # mostly what entries hold, controls included
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | _ascii | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(_ascii | st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(_json_values)
def test_canonical_is_the_standard_library_spelling(value: Any) -> None:
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert audit.canonical(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": {"d": ["x", True, -3], "c": None}},  # keys out of order, ASCII only
        {"ctl": '\x00\x1f\t\n"\\/\x7f', "\x01": ""},  # escapes, still ASCII
        {"b": 1, "a": [2**70, -(2**64)]},  # past 64 bits: orjson refuses
        {"name": "Zoë", "\x7f": "\x00\x1f\u2028"},  # escapes and non-ASCII text
        {10: "int keys", 9: "sorted as numbers"},  # the standard library turns them into strings
    ],
)
def test_canonical_edge_cases_match_the_standard_library(value: Any) -> None:
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert audit.canonical(value) == expected
