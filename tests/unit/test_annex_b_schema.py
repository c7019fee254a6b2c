"""Annex B facts at the API: every fact real (never blank), the new facts required, named."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gateway.http.openapi import openapi_document
from gateway.http.problems import validation_errors
from gateway.http.schemas import AnnexB, DisclosureSubmission

SECRET = "SECRET-VALUE-77"
FACTS: dict[str, Any] = {
    "requesting_officer": "DC 1234 Example",
    "rank": "Detective Constable",
    "authorising_officer": "DI 5678 Example",
    "requester_reference": "46/00000/26",
    "offence_or_prejudice": "Burglary (synthetic)",
    "prejudice": "Detection of the offence",
    "why_necessary": "To trace a witness",
    "data_requested": ["current address"],
}
TEXT_FACTS = [name for name, value in FACTS.items() if isinstance(value, str)]


def _errors(facts: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(ValidationError) as caught:
        AnnexB.model_validate(facts)
    return validation_errors(caught.value)


def test_complete_facts_are_accepted_and_reach_the_command() -> None:
    body = {
        "agreement": "KM-POL-S2-011",
        "purpose": "law_enforcement_request",
        "subject": {"local_id": "MC-1"},
        "record": {},
        "requested_by": {"user": "sw-1", "role": "social_worker"},
        "reason": "Police request",
        "annex_b": FACTS,
    }
    facts = DisclosureSubmission.model_validate(body).to_command().annex_b
    assert facts is not None
    assert (facts.prejudice, facts.data_requested, facts.requester_reference) == (
        "Detection of the offence",
        ("current address",),
        "46/00000/26",
    )


@pytest.mark.parametrize("name", TEXT_FACTS)
@pytest.mark.parametrize("blank", ["", " ", " \t\n "])
def test_a_blank_fact_is_refused_by_name(name: str, blank: str) -> None:
    [error] = _errors({**FACTS, name: blank})
    assert error["field"] == name


@pytest.mark.parametrize("name", ["prejudice", "data_requested", "requester_reference"])
def test_the_new_facts_are_required(name: str) -> None:
    facts = {k: v for k, v in FACTS.items() if k != name}
    assert [e["field"] for e in _errors(facts)] == [name]


@pytest.mark.parametrize("items", [[], ["   "], ["address", ""]])
def test_data_requested_lists_real_items(items: list[str]) -> None:
    [error] = _errors({**FACTS, "data_requested": items})
    assert error["field"].startswith("data_requested")


def test_a_refusal_never_echoes_the_value() -> None:
    errors = _errors({**FACTS, "prejudice": " " * 3, "rank": SECRET * 10})
    assert {e["field"] for e in errors} == {"prejudice", "rank"}
    assert SECRET not in repr(errors)


def test_the_openapi_document_requires_the_facts_and_says_not_blank() -> None:
    schema = openapi_document()["components"]["schemas"]["AnnexB"]
    assert set(FACTS) <= set(schema["required"])
    assert schema["properties"]["prejudice"]["pattern"] == r"\S"
    assert schema["properties"]["data_requested"]["minItems"] == 1
