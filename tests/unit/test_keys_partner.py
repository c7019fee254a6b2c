"""Partner keys: what registration accepts and refuses, and which key is chosen when."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc.jwk import ECKey, OKPKey, RSAKey

from gateway.keys import (
    PartnerKey,
    PartnerKeyError,
    encryption_key_for,
    generate_partner_keys,
    public_jwk,
)
from gateway.partner_keys import sealed_key_refusal

T0 = datetime(2025, 4, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _pub(key: Any, **extra: str) -> dict[str, Any]:
    return dict(key.as_dict(private=False, **extra))


@pytest.mark.parametrize("kind", ["ec", "okp", "rsa"])
def test_generated_partner_keys_register(kind: str) -> None:
    enc, sig = generate_partner_keys(kind)  # type: ignore[arg-type]
    enc_key = PartnerKey.from_jwk("kent-police", public_jwk(enc), use="enc")
    sig_key = PartnerKey.from_jwk("kent-police", public_jwk(sig), use="sig")
    assert enc_key.kid == enc["kid"]
    assert sig_key.kid == sig["kid"]
    assert "d" not in enc_key.jwk
    assert enc_key.jwk["use"] == "enc"
    assert (
        enc_key.alg
        == {"ec": "ECDH-ES+A256KW", "okp": "ECDH-ES+A256KW", "rsa": "RSA-OAEP-256"}[kind]
    )
    assert sig_key.alg == ("EdDSA" if kind == "okp" else "ES256")


def _off_curve() -> dict[str, Any]:
    jwk = _pub(ECKey.generate_key("P-256"))
    jwk["x"] = jwk["y"]
    return jwk


@pytest.mark.parametrize(
    ("jwk", "use", "message"),
    [
        (_pub(RSAKey.generate_key(2048)), "enc", "3072"),
        (_pub(ECKey.generate_key("P-384")), "enc", "EC P-256, X25519 or RSA"),
        (_pub(ECKey.generate_key("secp256k1")), "sig", "P-256 or Ed25519"),
        (_pub(OKPKey.generate_key("X25519")), "sig", "P-256 or Ed25519"),
        (_pub(OKPKey.generate_key("Ed25519")), "enc", "EC P-256, X25519 or RSA"),
        (_pub(OKPKey.generate_key("Ed448")), "sig", "P-256 or Ed25519"),
        (ECKey.generate_key("P-256").as_dict(private=True), "enc", "private key was given"),
        (_pub(ECKey.generate_key("P-256"), use="sig"), "enc", "use='sig'"),
        (_pub(ECKey.generate_key("P-256"), alg="ES384"), "sig", "alg 'ES384'"),
        (_pub(RSAKey.generate_key(3072), alg="RSA1_5"), "enc", "alg 'RSA1_5'"),
        ({"kty": "oct", "k": "c2VjcmV0"}, "enc", "key type"),
        ({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}, "enc", "not a valid JWK"),
        ({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}, "both", "use must be"),
        (_off_curve(), "enc", "not a valid JWK"),
    ],
)
def test_registration_refuses(jwk: dict[str, Any], use: Any, message: str) -> None:
    with pytest.raises(PartnerKeyError, match=re.escape(message)):
        PartnerKey.from_jwk("dwp", jwk, use=use)


def test_rsa_3072_and_legacy_eddsa_alg_are_accepted() -> None:
    rsa = PartnerKey.from_jwk("dwp", _pub(RSAKey.generate_key(3072), alg="RSA-OAEP-256"), use="enc")
    ed = PartnerKey.from_jwk("dwp", _pub(OKPKey.generate_key("Ed25519"), alg="EdDSA"), use="sig")
    assert rsa.jwk["kty"] == "RSA"
    assert ed.jwk["crv"] == "Ed25519"


def test_from_pem_accepts_public_and_refuses_private() -> None:
    key = ECKey.generate_key("P-256")
    registered = PartnerKey.from_pem("cqc", key.as_pem(private=False), use="sig")
    assert registered.kid == key.thumbprint()
    x25519 = OKPKey.generate_key("X25519")
    assert (
        PartnerKey.from_pem("cqc", x25519.as_pem(private=False), use="enc").jwk["crv"] == "X25519"
    )
    with pytest.raises(PartnerKeyError, match="private"):
        PartnerKey.from_pem("cqc", key.as_pem(private=True), use="sig")
    with pytest.raises(PartnerKeyError):
        PartnerKey.from_pem(
            "cqc", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", use="sig"
        )


def test_validity_window_must_be_ordered_and_zoned() -> None:
    jwk = _pub(ECKey.generate_key("P-256"))
    with pytest.raises(PartnerKeyError):
        PartnerKey.from_jwk("gp", jwk, use="enc", not_before=T0, not_after=T0)
    with pytest.raises(PartnerKeyError):
        PartnerKey.from_jwk("gp", jwk, use="enc", not_before=datetime(2025, 1, 1))


def test_to_dict_round_trip_keeps_revocation() -> None:
    key = PartnerKey.from_jwk(
        "nelft", _pub(ECKey.generate_key("P-256")), use="enc", not_before=T0, not_after=T0 + DAY
    ).revoke("compromised", T0 + DAY / 2)
    again = PartnerKey.from_dict(key.to_dict())
    assert again == key
    assert again.status == "revoked"
    assert again.revoked_reason == "compromised"
    assert key.to_dict()["alg"] == "ECDH-ES+A256KW"


def _enc(partner: str, **window: datetime) -> PartnerKey:
    return PartnerKey.from_jwk(partner, _pub(ECKey.generate_key("P-256")), use="enc", **window)


def test_encryption_key_for_picks_the_newest_usable_key() -> None:
    old = _enc("kcc", not_before=T0 - 30 * DAY)
    new = _enc("kcc", not_before=T0 - DAY)
    future = _enc("kcc", not_before=T0 + DAY)
    revoked = _enc("kcc", not_before=T0).revoke("lost laptop", T0)
    expired = _enc("kcc", not_before=T0 - 2 * DAY, not_after=T0)
    other = _enc("dwp", not_before=T0)
    keys = [old, new, future, revoked, expired, other]
    assert encryption_key_for(keys, "kcc", T0) == new
    assert encryption_key_for(keys, "kcc", T0 + 2 * DAY) == future
    assert encryption_key_for([old, revoked], "kcc", T0) == old


def test_encryption_key_for_never_uses_sig_revoked_or_expired_keys() -> None:
    sig = PartnerKey.from_jwk("kcc", _pub(ECKey.generate_key("P-256")), use="sig")
    revoked = _enc("kcc").revoke("superseded", T0)
    expired = _enc("kcc", not_before=T0 - 2 * DAY, not_after=T0 - DAY)
    with pytest.raises(PartnerKeyError) as caught:
        encryption_key_for([sig, revoked, expired, _enc("dwp")], "kcc", T0)
    assert caught.value.code == "partner_key_missing"


def _retired(key: PartnerKey, until: datetime) -> PartnerKey:
    return dataclasses.replace(key, status="retired", not_after=until)


def test_a_retired_key_is_never_chosen_for_a_new_envelope() -> None:
    old = _retired(_enc("kcc", not_before=T0 - DAY), T0 + 30 * DAY)
    newer = _enc("kcc", not_before=T0 - 30 * DAY)  # older registration, still active
    assert encryption_key_for([old, newer], "kcc", T0) == newer
    with pytest.raises(PartnerKeyError):
        encryption_key_for([old], "kcc", T0)


def test_an_envelope_may_go_until_its_key_is_revoked_or_past_retirement() -> None:
    key = _enc("kcc")
    sealed = ("council-sig-kid", key.kid)
    assert sealed_key_refusal([key], "kcc", sealed, T0) is None
    revoked = key.revoke("lost laptop", T0)
    assert sealed_key_refusal([revoked], "kcc", sealed, T0) == "partner_key_revoked"
    retired = _retired(key, T0 + DAY)
    assert sealed_key_refusal([retired], "kcc", sealed, T0) is None
    assert sealed_key_refusal([retired], "kcc", sealed, T0 + DAY) == "partner_key_retired"
    # Only the partner's own encryption key it was sealed to counts.
    assert sealed_key_refusal([revoked], "kcc", ("council-sig-kid",), T0) is None
    assert sealed_key_refusal([revoked], "dwp", sealed, T0) is None
    as_sig = dataclasses.replace(revoked, use="sig")
    assert sealed_key_refusal([as_sig], "kcc", sealed, T0) is None


def test_a_retired_key_round_trips() -> None:
    retired = _retired(_enc("kcc", not_before=T0 - DAY), T0 + DAY)
    assert PartnerKey.from_dict(retired.to_dict()).status == "retired"
    assert not retired.usable_at(T0)
