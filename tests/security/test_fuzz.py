"""Bounded fuzzing of the two parsers unauthenticated or untrusted bytes reach: the receipt
verifier and the submission body. Any input ends in a refusal with a code, never a crash."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from pydantic_core import from_json

from gateway.http.schemas import DisclosureSubmission, nul_path
from gateway.partner_keys import PartnerKey, generate_partner_keys, public_jwk
from gateway.receipts import ReceiptError, verify_receipt
from tests.gateway_support import lac_submission

NOW = datetime(2026, 11, 25, tzinfo=UTC)
_, SIG = generate_partner_keys("ec")
KEYS = [PartnerKey.from_jwk("medway-ft", public_jwk(SIG), use="sig", not_before=NOW)]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

segments = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")
compact = st.builds(lambda a, b, c: f"{a}.{b}.{c}".encode(), segments, segments, segments)


@FUZZ
@given(st.one_of(st.binary(max_size=512), compact))
def test_the_receipt_verifier_only_ever_refuses(token: bytes) -> None:
    with pytest.raises(ReceiptError, match=r".") as refused:
        verify_receipt(
            token,
            partner_keys=KEYS,
            partner_id="medway-ft",
            council_id="medway-council",
            message_id="m-1",
            expected_digest="d",
            now=NOW,
        )
    assert refused.value.code.startswith("receipt_")


scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=25,
)


@FUZZ
@given(st.dictionaries(st.sampled_from(sorted(lac_submission())), json_values, max_size=7))
def test_the_submission_schema_only_ever_refuses_or_accepts(changes: dict[str, Any]) -> None:
    body = {**lac_submission(), **changes}
    try:
        submission = DisclosureSubmission.model_validate(body)
    except ValidationError as exc:
        codes = [error["type"] for error in exc.errors()]
    else:  # accepted: then no text in it can carry a NUL to the database
        assert nul_path(submission.model_dump()) is None
        return
    assert all(codes)


@FUZZ
@given(st.binary(max_size=256))
def test_raw_bytes_are_json_or_refused(raw: bytes) -> None:
    try:
        payload = from_json(raw, allow_inf_nan=False)
    except ValueError:
        return
    try:
        DisclosureSubmission.model_validate(payload)
    except ValidationError:
        return
