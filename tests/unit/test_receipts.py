"""Receipts: what verifies, and every way a receipt is refused with its own code."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import string
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc.jwk import OKPKey

from gateway import jose
from gateway.keys import PartnerKey, generate_partner_keys, public_jwk
from gateway.receipts import ReceiptError, VerifiedReceipt, make_receipt, verify_receipt

T0 = datetime(2025, 6, 2, 14, 0, tzinfo=UTC)
DAY = timedelta(days=1)
COUNCIL = "medway-council"
BODY = b"eyJhbGciOi.the.exact.envelope.bytes"
DIGEST = base64.urlsafe_b64encode(hashlib.sha256(BODY).digest()).rstrip(b"=").decode()


def b64json(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


class Partners:
    """Partner A (EC keys) and partner B (OKP keys), each with a registered signing key."""

    def __init__(self) -> None:
        _, self.sig_a = generate_partner_keys("ec")
        _, self.sig_b = generate_partner_keys("okp")
        window = {"not_before": T0 - 30 * DAY, "not_after": T0 + 30 * DAY}
        self.key_a = PartnerKey.from_jwk("partner-a", public_jwk(self.sig_a), use="sig", **window)
        self.key_b = PartnerKey.from_jwk("partner-b", public_jwk(self.sig_b), use="sig", **window)
        self.keys = [self.key_a, self.key_b]

    def receipt(self, **overrides: Any) -> bytes:
        options: dict[str, Any] = {
            "partner_id": "partner-a",
            "council_id": COUNCIL,
            "message_id": "d-100",
            "body_received": BODY,
            "status": "received",
            "signing_key": self.sig_a,
            "now": T0,
            "receipt_id": "r-1",
        }
        options.update(overrides)
        return make_receipt(**options)

    def verify(self, token: bytes, **overrides: Any) -> VerifiedReceipt:
        options: dict[str, Any] = {
            "partner_keys": self.keys,
            "partner_id": "partner-a",
            "council_id": COUNCIL,
            "message_id": "d-100",
            "expected_digest": DIGEST,
            "now": T0 + timedelta(minutes=1),
        }
        options.update(overrides)
        return verify_receipt(token, **options)


@pytest.fixture(scope="module")
def partners() -> Partners:
    return Partners()


def refused(partners: Partners, token: bytes, code: str, **overrides: Any) -> None:
    with pytest.raises(ReceiptError) as caught:
        partners.verify(token, **overrides)
    assert caught.value.code == code


def test_a_good_receipt_verifies(partners: Partners) -> None:
    verified = partners.verify(partners.receipt())
    assert verified == VerifiedReceipt("r-1", "received", None, T0, partners.key_a.kid)


def test_a_rejection_carries_its_reason(partners: Partners) -> None:
    token = partners.receipt(status="rejected", reason="unknown_subject")
    verified = partners.verify(token)
    assert (verified.status, verified.reason) == ("rejected", "unknown_subject")


def test_ed25519_receipts_verify_under_both_alg_names(partners: Partners) -> None:
    token = partners.receipt(partner_id="partner-b", signing_key=partners.sig_b)
    assert jose.read_header(token, 3)["alg"] == "EdDSA"  # RFC 8037, what partners' libraries use
    assert partners.verify(token, partner_id="partner-b").kid == partners.key_b.kid
    claims = json.loads(base64.urlsafe_b64decode(token.split(b".")[1] + b"=="))
    fully_specified = jose.sign_jws(
        jose.canonical_json(claims),
        jose.import_private_jwk(partners.sig_b),
        {"alg": "Ed25519", "kid": partners.key_b.kid},
    )
    assert partners.verify(fully_specified.encode(), partner_id="partner-b").receipt_id == "r-1"


def test_receipt_over_the_wrong_digest(partners: Partners) -> None:
    token = partners.receipt(body_received=BODY + b"x")
    refused(partners, token, "receipt_digest_mismatch")


def test_receipt_for_another_message(partners: Partners) -> None:
    refused(partners, partners.receipt(message_id="d-999"), "receipt_wrong_message")


def test_receipt_signed_by_another_partner(partners: Partners) -> None:
    # B signs with its own key but claims to be A: A has no key with B's kid.
    as_a = partners.receipt(signing_key=partners.sig_b)
    refused(partners, as_a, "receipt_unknown_key")
    # B signs as itself: a valid receipt, but not from the partner we sent to.
    as_b = partners.receipt(partner_id="partner-b", signing_key=partners.sig_b)
    assert partners.verify(as_b, partner_id="partner-b").kid == partners.key_b.kid
    with pytest.raises(ReceiptError) as caught:
        verify_receipt(
            as_b,
            partner_keys=[partners.key_a, _rebadged(partners.key_b, "partner-a")],
            partner_id="partner-a",
            council_id=COUNCIL,
            message_id="d-100",
            expected_digest=DIGEST,
            now=T0,
        )
    assert caught.value.code == "receipt_wrong_issuer"
    # B's key, A's kid in the header: the signature does not verify with A's key.
    _, payload, _ = as_b.decode().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["iss"] = "partner-a"
    forged = jose.sign_jws(
        jose.canonical_json(claims),
        jose.import_private_jwk(generate_partner_keys("ec")[1]),
        {"alg": "ES256", "kid": partners.key_a.kid},
    )
    refused(partners, forged.encode(), "receipt_bad_signature")


def _rebadged(key: PartnerKey, partner_id: str) -> PartnerKey:
    return PartnerKey.from_jwk(partner_id, key.jwk, use="sig")


def test_receipt_for_another_council(partners: Partners) -> None:
    refused(partners, partners.receipt(council_id="kent-county-council"), "receipt_wrong_audience")


def test_receipt_with_a_revoked_key(partners: Partners) -> None:
    revoked = partners.key_a.revoke("private key leaked", T0 - DAY)
    refused(partners, partners.receipt(), "receipt_revoked_key", partner_keys=[revoked])


def test_receipt_with_a_retired_key_verifies_until_its_retirement(partners: Partners) -> None:
    retired = dataclasses.replace(partners.key_a, status="retired", not_after=T0 + DAY)
    assert partners.verify(partners.receipt(), partner_keys=[retired]).issued_at == T0
    ended = dataclasses.replace(partners.key_a, status="retired", not_after=T0)
    refused(partners, partners.receipt(), "receipt_expired_key", partner_keys=[ended])


def test_receipt_with_an_expired_or_not_yet_valid_key(partners: Partners) -> None:
    expired = PartnerKey.from_jwk(
        "partner-a", partners.key_a.jwk, use="sig", not_before=T0 - 9 * DAY, not_after=T0 - DAY
    )
    refused(partners, partners.receipt(), "receipt_expired_key", partner_keys=[expired])
    early = PartnerKey.from_jwk("partner-a", partners.key_a.jwk, use="sig", not_before=T0 + DAY)
    refused(partners, partners.receipt(), "receipt_expired_key", partner_keys=[early])
    # A receipt made while the key was valid still verifies after the key has expired.
    later = T0 + 60 * DAY
    assert partners.verify(partners.receipt(), now=later).issued_at == T0


def test_receipt_from_the_future(partners: Partners) -> None:
    refused(partners, partners.receipt(now=T0 + DAY), "receipt_not_yet_valid")


def test_an_encryption_key_never_verifies_a_receipt(partners: Partners) -> None:
    as_enc = PartnerKey.from_jwk(
        "partner-a", {k: v for k, v in partners.key_a.jwk.items() if k != "use"}, use="enc"
    )
    refused(partners, partners.receipt(), "receipt_unknown_key", partner_keys=[as_enc])


def test_alg_none_and_hs256_are_refused(partners: Partners) -> None:
    good = partners.receipt().decode()
    _, payload, _ = good.split(".")
    none = f"{b64json({'alg': 'none', 'kid': partners.key_a.kid})}.{payload}."
    refused(partners, none.encode(), "receipt_algorithm_not_allowed")
    header = b64json({"alg": "HS256", "kid": partners.key_a.kid})
    secret = json.dumps(dict(partners.key_a.jwk)).encode()
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    hs = f"{header}.{payload}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    refused(partners, hs.encode(), "receipt_algorithm_not_allowed")
    es384 = f"{b64json({'alg': 'ES384', 'kid': partners.key_a.kid})}.{payload}.AAAA"
    refused(partners, es384.encode(), "receipt_algorithm_not_allowed")


def test_alg_that_does_not_fit_the_registered_key(partners: Partners) -> None:
    ed = OKPKey.generate_key("Ed25519")
    claims = {"iss": "partner-a", "aud": COUNCIL, "jti": "r", "iat": 1, "message_id": "d-100"}
    token = jose.sign_jws(
        jose.canonical_json(claims), ed, {"alg": "Ed25519", "kid": partners.key_a.kid}
    )
    refused(partners, token.encode(), "receipt_algorithm_not_allowed")


def test_tampered_receipt_signature_or_claims(partners: Partners) -> None:
    header, payload, signature = partners.receipt().decode().split(".")
    flipped = signature[:5] + ("A" if signature[5] != "A" else "B") + signature[6:]
    refused(partners, f"{header}.{payload}.{flipped}".encode(), "receipt_bad_signature")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    other = b64json({**claims, "status": "rejected", "reason": "forged"})
    refused(partners, f"{header}.{other}.{signature}".encode(), "receipt_bad_signature")


@pytest.mark.parametrize(
    "token",
    [
        b"",
        b"not a jws",
        b"a.b",
        b"a.b.c.d",
        b"\xff\xfe.x.y",
        f"{b64json({'kid': 'k'})}.e30.".encode(),
    ],
)
def test_garbage_is_malformed(partners: Partners, token: bytes) -> None:
    refused(partners, token, "receipt_malformed")


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": COUNCIL},
        {"iss": "partner-a", "aud": COUNCIL, "jti": "r", "iat": "now", "message_id": "d-100",
         "digest": DIGEST, "status": "received"},
        {"iss": "partner-a", "aud": COUNCIL, "jti": "r", "iat": 1, "message_id": "d-100",
         "digest": DIGEST, "status": "maybe"},
        {"iss": "partner-a", "aud": 5, "jti": "r", "iat": 1, "message_id": "d-100",
         "digest": DIGEST, "status": "received"},
        {"iss": "partner-a", "aud": COUNCIL, "jti": "", "iat": 1, "message_id": "d-100",
         "digest": DIGEST, "status": "received"},
    ],
)  # fmt: skip
def test_signed_but_malformed_claims(partners: Partners, claims: dict[str, Any]) -> None:
    key = jose.import_private_jwk(partners.sig_a)
    token = jose.sign_jws(
        jose.canonical_json(claims), key, {"alg": "ES256", "kid": partners.key_a.kid}
    )
    refused(partners, token.encode(), "receipt_malformed")


def test_unknown_kid_or_no_kid(partners: Partners) -> None:
    key = jose.import_private_jwk(partners.sig_a)
    claims = {"iss": "partner-a"}
    no_kid = jose.sign_jws(jose.canonical_json(claims), key, {"alg": "ES256"})
    refused(partners, no_kid.encode(), "receipt_unknown_key")
    refused(partners, partners.receipt(), "receipt_unknown_key", partner_keys=[])


def test_audience_may_be_a_list(partners: Partners) -> None:
    key = jose.import_private_jwk(partners.sig_a)
    claims = {"iss": "partner-a", "aud": ["x", COUNCIL], "jti": "r-9", "iat": int(T0.timestamp()),
              "message_id": "d-100", "digest": DIGEST, "status": "received"}  # fmt: skip
    token = jose.sign_jws(
        jose.canonical_json(claims), key, {"alg": "ES256", "kid": partners.key_a.kid}
    )
    assert partners.verify(token.encode()).receipt_id == "r-9"


_CLAIM_NAMES = ["iss", "aud", "jti", "iat", "message_id", "digest", "status", "reason", "x"]
_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["partner-a", COUNCIL, "d-100", DIGEST, "received"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_TOKENISH = st.text(alphabet=string.ascii_letters + string.digits + "-_.=", max_size=300)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.one_of(st.binary(max_size=300), _TOKENISH.map(str.encode)))
def test_arbitrary_input_is_a_receipt_error_never_a_crash(partners: Partners, raw: bytes) -> None:
    with pytest.raises(ReceiptError):
        partners.verify(raw)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(claims=st.dictionaries(st.sampled_from(_CLAIM_NAMES), _JSON_VALUES, max_size=8))
def test_arbitrary_signed_claims_never_crash(partners: Partners, claims: dict[str, Any]) -> None:
    key = jose.import_private_jwk(partners.sig_a)
    token = jose.sign_jws(
        jose.canonical_json(claims), key, {"alg": "ES256", "kid": partners.key_a.kid}
    )
    outcome = _verify_or_error(partners, token.encode())
    assert isinstance(outcome, VerifiedReceipt) or outcome.code.startswith("receipt_")


def _verify_or_error(partners: Partners, token: bytes) -> VerifiedReceipt | ReceiptError:
    try:
        return partners.verify(token)
    except ReceiptError as exc:
        return exc
