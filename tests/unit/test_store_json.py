"""JSON columns are written by orjson, falling back to the json module where orjson cannot."""

from __future__ import annotations

import json

from gateway.store.dialects import json_text


def test_json_columns_are_compact_and_read_back_equal() -> None:
    value = {"fields_sent": ["person.name", "household[*].age"], "n": 3, "ok": True, "x": None}
    text = json_text(value)
    assert " " not in text
    assert json.loads(text) == value


def test_integer_keys_become_strings_and_big_integers_stay_exact() -> None:
    assert json.loads(json_text({1: "a"})) == {"1": "a"}
    big = {"id": 2**70}  # orjson refuses it: the json module writes it
    assert json.loads(json_text(big)) == big
