"""The partner simulator's ledger: counts, duplicates, and field names without values."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.partner_sim.ledger import Ledger, field_paths

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_arrivals_are_counted_per_message_id() -> None:
    ledger = Ledger()
    ledger.arrived("d-1", "dig-a", T0)
    ledger.arrived("d-2", "dig-b", T0)
    again = ledger.arrived("d-1", "dig-a", T0 + timedelta(seconds=5))
    resealed = ledger.arrived("d-1", "dig-c", T0 + timedelta(seconds=9))

    assert again is resealed
    assert (again.count, again.digests) == (3, ["dig-a", "dig-c"])
    assert (again.first_seen, again.last_seen) == (T0, T0 + timedelta(seconds=9))
    assert again.duplicate
    assert not ledger.get("d-2").duplicate  # type: ignore[union-attr]
    assert (len(ledger), ledger.arrivals, ledger.duplicates) == (2, 4, 2)
    assert "d-1" in ledger
    assert "d-9" not in ledger


def test_the_json_form_lists_every_entry() -> None:
    ledger = Ledger()
    entry = ledger.arrived("d-1", "dig-a", T0)
    entry.data_fields = ["name"]
    entry.answers["receipt"] += 1
    ledger.unidentified = 2
    document = json.loads(json.dumps(ledger.to_dict()))
    assert document["messages"] == 1
    assert document["unidentified"] == 2
    assert document["entries"][0]["data_fields"] == ["name"]
    assert document["entries"][0]["answers"] == {"receipt": 1}
    assert document["entries"][0]["first_seen"] == T0.isoformat()


def test_field_paths_name_nested_leaves_and_lists() -> None:
    record = {
        "name": {"given": "Ada", "family": "Testperson"},
        "contacts": [{"phone": "01632 960000"}, {"email": "a@example.invalid"}],
        "diagnoses": ["synthetic"],
        "empty": {},
    }
    assert field_paths(record) == [
        "contacts[].email",
        "contacts[].phone",
        "diagnoses",
        "empty",
        "name.family",
        "name.given",
    ]


def test_field_paths_stop_at_the_limit() -> None:
    assert len(field_paths({f"f{n}": n for n in range(500)}, limit=50)) == 50


names = st.text(alphabet="abcdefghij_", min_size=1, max_size=6)
leaves = st.text(alphabet="KLMNOPQRSTUVWXYZ0123456789 ", min_size=3, max_size=12)
records = st.recursive(
    leaves | st.integers(),
    lambda inner: st.dictionaries(names, inner, max_size=4) | st.lists(inner, max_size=3),
    max_leaves=20,
)


@given(st.dictionaries(names, records, max_size=5))
def test_field_paths_never_carry_a_value(record: dict[str, Any]) -> None:
    """Names are lower-case letters and leaves are not: no leaf value can leak into a path."""
    paths = field_paths(record)
    text = "".join(paths)
    assert not any(ch in text for ch in "KLMNOPQRSTUVWXYZ0123456789 ")
    assert all(path.split(".")[0].removesuffix("[]") in record for path in paths)
