"""The readable part of a disclosure email: dictionary labels, escaped values, nothing more."""

from __future__ import annotations

import base64
import json

from adapters.email_rendering import claims_of, is_notice, labelled_fields, render, render_notice

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


NOTICE = {
    "jti": "0193-notice",
    "notice": {
        "kind": "rectification",
        "article": "UK GDPR Art 19",
        "reason": "Typed <wrongly>",
        "disclosures": ["0193-d1", "0193-d2"],
        "fields": ["identity.date_of_birth", "relatives[*].name", "identity.name"],
        "corrections": {"identity.date_of_birth": "2012-02-01", "relatives[*].name": ["<b>Jo"]},
    },
}


def test_a_notice_names_its_kind_disclosures_fields_and_only_the_corrected_values() -> None:
    assert is_notice(NOTICE)
    assert not is_notice(CLAIMS)
    shown = render_notice(NOTICE, council="medway-council", attachment="0193-notice.jwt")
    for text in (shown.text, shown.html):
        assert "Rectification" in text
        assert "0193-d1, 0193-d2" in text
        assert "Date of birth (identity.date_of_birth)" in text
        assert "corrected: 2012-02-01" in text
        assert "0193-notice.jwt" in text
    line = next(x for x in shown.text.splitlines() if "(identity.name)" in x)
    assert line.endswith("no corrected value given")
    assert "&lt;b&gt;Jo" in shown.html
    assert "<b>Jo" not in shown.html
    assert "Typed &lt;wrongly&gt;" in shown.html
