"""Agreements sending special category or criminal offence data must name their DPIA."""

from __future__ import annotations

from typing import Any

from agreements.dpia import dpia_problems
from agreements.model import Agreement
from tests.unit.test_model_loader import doc, rules


def agreement(**changes: Any) -> Agreement:
    return Agreement.model_validate(doc(**changes))


def test_special_category_without_a_dpia_is_refused_and_names_the_field() -> None:
    problems = dpia_problems(agreement(references={}), "lac.yaml")
    assert [(p.field, p.rule) for p in problems] == [("references.dpia", "dpia_required")]
    assert "health.diagnoses[*].code" in problems[0].message
    assert dpia_problems(agreement(references={"dpia": "  "}), "lac.yaml") != []


def test_criminal_offence_data_needs_one_too() -> None:
    fields = [{"path": "identity.name"}, {"path": "youth_offending.convictions[*].offence"}]
    problems = dpia_problems(agreement(references={}, fields=fields), "yj.yaml")
    assert [p.rule for p in problems] == ["dpia_required"]
    assert "criminal offence" in problems[0].message


def test_a_named_dpia_or_ordinary_data_passes() -> None:
    assert dpia_problems(agreement(), "lac.yaml") == []
    ordinary = [{"path": "identity.name"}, {"path": "identity.date_of_birth"}]
    assert dpia_problems(agreement(references={}, fields=ordinary), "x.yaml") == []
    dropped = [{"path": "health.diagnoses[*].code", "transform": "drop"}]
    assert dpia_problems(agreement(references={}, fields=dropped), "x.yaml") == []


def test_the_loader_refuses_the_agreement() -> None:
    assert ("references.dpia", "dpia_required") in rules(doc(references={}))
