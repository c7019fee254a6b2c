"""Audit details carry names and codes only: what `pending_row` refuses, wherever it sits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gateway import audit

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
