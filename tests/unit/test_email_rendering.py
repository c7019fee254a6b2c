"""The readable part of a disclosure email: dictionary labels, escaped values, nothing more."""

from __future__ import annotations

import base64
import json

from adapters.email_rendering import claims_of, labelled_fields, render

CLAIMS = {
    "jti": "0193-abc",
    "purpose": "safeguarding",
    "agreement": {"id": "KM-POLICE-07", "version": 1},
    "retain_until": "2031-01-01",
    "onward_sharing": "prohibited",
    "subject": {"nhs_number": "9434765919", "local_id": "MC-1"},
    "data": {
        "identity": {"family_name": "<script>alert(1)</script>", "date_of_birth": "2012-01-01"},
        "relatives": [{"name": "Pat Example"}, {"name": "Jo Example"}],
        "unlisted": {"thing": True},
    },
}


def test_labels_come_from_the_dictionary_and_list_items_are_numbered() -> None:
    rows = dict(labelled_fields(CLAIMS))
    assert rows["NHS number"] == "9434765919"
    assert rows["Date of birth"] == "2012-01-01"
    assert [k for k in rows if k.startswith("Relative's or carer's name")] == [
        "Relative's or carer's name (1)",
        "Relative's or carer's name (2)",
    ]
    assert rows["unlisted.thing"] == "Yes"  # no label known: the path, never dropped


def test_html_escapes_every_value_and_the_agreement_is_not_named() -> None:
    shown = render(CLAIMS, council="medway-council", attachment="0193-abc.jwt")
    assert "<script>" not in shown.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown.html
    assert "<script>alert(1)</script>" in shown.text  # text is not HTML
    assert "KM-POLICE" not in shown.text + shown.html
    assert "0193-abc" in shown.text
    assert "0193-abc.jwt" in shown.html


def test_claims_are_read_from_the_signed_token() -> None:
    payload = base64.urlsafe_b64encode(json.dumps(CLAIMS).encode()).rstrip(b"=")
    assert claims_of(b"eyJhbGciOiJFUzI1NiJ9." + payload + b".sig") == CLAIMS
