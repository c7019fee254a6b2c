"""Sealing: nested JWT round trips for every key type and size, and the joserfc size trap."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from joserfc import jwe
from joserfc.errors import ExceededSizeError

from gateway import jose
from gateway.keys import (
    CouncilKeyring,
    PartnerKey,
    PartnerKeyError,
    generate_partner_keys,
    public_jwk,
)
from gateway.sealing import (
    EnvelopeAgreement,
    EnvelopeClaims,
    EnvelopeError,
    SealedEnvelope,
    open_envelope,
    seal,
)

T0 = datetime(2025, 5, 6, 10, 30, tzinfo=UTC)
COUNCIL = "medway-council"
NHS_NUMBER = "9990001234"  # synthetic: the 999 range is never issued
KB = 1024
MB = 1024 * 1024


def claims_for(partner: str, size: int, *, jti: str = "d-0001") -> EnvelopeClaims:
    return EnvelopeClaims(
        iss=COUNCIL,
        aud=partner,
        jti=jti,
        iat=T0,
        agreement=EnvelopeAgreement("isa-lac-health", 3),
        purpose="looked_after_children_health",
        subject={"nhs_number": NHS_NUMBER},
        data={"name": {"given": "Ada", "family": "Testperson"}, "notes": "n" * size},
        retain_until=date(2031, 5, 6),
        onward_sharing="prohibited",
    )


@pytest.fixture(scope="module")
def partners() -> dict[str, tuple[dict[str, Any], PartnerKey]]:
    """One partner per encryption key kind: (private enc JWK, registered public key)."""
    result = {}
    for kind in ("ec", "okp", "rsa"):
        enc, _ = generate_partner_keys(kind)  # type: ignore[arg-type]
        partner = f"partner-{kind}"
        result[kind] = (enc, PartnerKey.from_jwk(partner, public_jwk(enc), use="enc"))
    return result


@pytest.fixture(scope="module")
def rings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CouncilKeyring]:
    result = {}
    for alg in ("ES256", "Ed25519"):
        ring = CouncilKeyring(tmp_path_factory.mktemp("keys") / alg)
        ring.generate(alg, T0 - timedelta(days=1))
        result[alg] = ring
    return result


def _round_trip(ring: CouncilKeyring, enc: dict[str, Any], key: PartnerKey, size: int) -> None:
    claims = claims_for(key.partner_id, size)
    sealed = seal(claims, ring.active_signer(T0), key)
    opened = open_envelope(
        sealed.body,
        decryption_key=enc,
        council_jwks=ring.jwks(T0),
        expected_audience=key.partner_id,
        expected_issuer=COUNCIL,
        now=T0,
    )
    assert opened == claims.to_jwt()
    assert EnvelopeClaims.from_jwt(opened) == claims
    assert sealed.signing_kid == ring.active_signer(T0).kid
    assert sealed.encryption_kid == key.kid
    digest = base64.urlsafe_b64encode(hashlib.sha256(sealed.body).digest()).rstrip(b"=")
    assert sealed.digest == digest.decode()


@pytest.mark.parametrize("size", [KB, 64 * KB], ids=["1KB", "64KB"])
@pytest.mark.parametrize("kind", ["ec", "okp", "rsa"])
@pytest.mark.parametrize("alg", ["ES256", "Ed25519"])
def test_round_trip(
    rings: dict[str, CouncilKeyring],
    partners: dict[str, tuple[dict[str, Any], PartnerKey]],
    alg: str,
    kind: str,
    size: int,
) -> None:
    enc, key = partners[kind]
    _round_trip(rings[alg], enc, key, size)


@pytest.mark.parametrize(("alg", "kind"), [("ES256", "ec"), ("Ed25519", "okp"), ("ES256", "rsa")])
def test_round_trip_10mb(
    rings: dict[str, CouncilKeyring],
    partners: dict[str, tuple[dict[str, Any], PartnerKey]],
    alg: str,
    kind: str,
) -> None:
    enc, key = partners[kind]
    _round_trip(rings[alg], enc, key, 10 * MB)


def test_joserfc_defaults_refuse_10mb_and_our_registry_does_not(
    rings: dict[str, CouncilKeyring], partners: dict[str, tuple[dict[str, Any], PartnerKey]]
) -> None:
    """The trap from the issue: default limits, and `algorithms=` silently dropping ours."""
    enc, key = partners["ec"]
    sealed = seal(claims_for(key.partner_id, 10 * MB), rings["ES256"].active_signer(T0), key)
    private = jose.import_private_jwk(enc)
    with pytest.raises(ExceededSizeError):
        jwe.decrypt_compact(sealed.body, private)
    with pytest.raises(ExceededSizeError):
        jwe.decrypt_compact(
            sealed.body,
            private,
            algorithms=["ECDH-ES+A256KW", "A256GCM"],
            registry=jose.JWE_REGISTRY,
        )
    assert jwe.decrypt_compact(sealed.body, private, registry=jose.JWE_REGISTRY).plaintext


def test_envelope_headers_are_the_contract(
    rings: dict[str, CouncilKeyring], partners: dict[str, tuple[dict[str, Any], PartnerKey]]
) -> None:
    enc, key = partners["okp"]
    sealed = seal(claims_for(key.partner_id, KB), rings["ES256"].active_signer(T0), key)
    outer = jose.read_header(sealed.body, 5)
    assert {k: outer[k] for k in ("alg", "enc", "cty", "kid")} == {
        "alg": "ECDH-ES+A256KW",
        "enc": "A256GCM",
        "cty": "JWT",
        "kid": key.kid,
    }
    inner = jose.read_header(jose.decrypt_jwe(sealed.body, jose.import_private_jwk(enc)), 3)
    assert inner == {"alg": "ES256", "kid": sealed.signing_kid, "typ": "JWT"}
    _, rsa_key = partners["rsa"]
    rsa_sealed = seal(
        claims_for(rsa_key.partner_id, KB), rings["Ed25519"].active_signer(T0), rsa_key
    )
    assert jose.read_header(rsa_sealed.body, 5)["alg"] == "RSA-OAEP-256"


def test_seal_refuses_a_revoked_or_signing_or_other_partners_key(
    rings: dict[str, CouncilKeyring], partners: dict[str, tuple[dict[str, Any], PartnerKey]]
) -> None:
    signer = rings["ES256"].active_signer(T0)
    _, key = partners["ec"]
    claims = claims_for(key.partner_id, KB)
    with pytest.raises(PartnerKeyError, match="not usable") as revoked:
        seal(claims, signer, key.revoke("compromised", T0 - timedelta(hours=1)))
    assert revoked.value.code == "partner_key_missing"
    expired = PartnerKey.from_jwk(
        key.partner_id, key.jwk, use="enc", not_before=T0 - timedelta(days=9), not_after=T0
    )
    with pytest.raises(PartnerKeyError, match="not usable"):
        seal(claims, signer, expired)
    with pytest.raises(EnvelopeError) as wrong:
        seal(claims_for("partner-okp", KB), signer, key)
    assert wrong.value.code == "envelope_wrong_recipient"


def test_seal_refuses_non_json_data_without_echoing_values(
    rings: dict[str, CouncilKeyring], partners: dict[str, tuple[dict[str, Any], PartnerKey]]
) -> None:
    _, key = partners["ec"]
    base = claims_for(key.partner_id, KB)
    bad = EnvelopeClaims(**{**_fields(base), "data": {"dob": {NHS_NUMBER}}})
    with pytest.raises(EnvelopeError) as caught:
        seal(bad, rings["ES256"].active_signer(T0), key)
    assert caught.value.code == "envelope_claims_invalid"
    assert NHS_NUMBER not in str(caught.value)
    assert caught.value.__cause__ is None
    naive = EnvelopeClaims(**{**_fields(base), "iat": datetime(2025, 5, 6)})
    with pytest.raises(EnvelopeError):
        seal(naive, rings["ES256"].active_signer(T0), key)


def test_sealed_envelope_repr_hides_the_body(
    rings: dict[str, CouncilKeyring], partners: dict[str, tuple[dict[str, Any], PartnerKey]]
) -> None:
    _, key = partners["ec"]
    sealed = seal(claims_for(key.partner_id, KB), rings["ES256"].active_signer(T0), key)
    assert isinstance(sealed, SealedEnvelope)
    assert sealed.body.decode()[:20] not in repr(sealed)
    assert f"bytes={len(sealed.body)}" in repr(sealed)


def test_from_jwt_names_the_bad_claim_only() -> None:
    good = claims_for("p", 10).to_jwt()
    for name, value in [
        ("aud", 7),
        ("iat", "yesterday"),
        ("retain_until", "soon"),
        ("agreement", {}),
    ]:
        with pytest.raises(EnvelopeError, match=name):
            EnvelopeClaims.from_jwt({**good, name: value})
    missing = {k: v for k, v in good.items() if k != "data"}
    with pytest.raises(EnvelopeError, match="'data' is missing"):
        EnvelopeClaims.from_jwt(missing)


def _fields(claims: EnvelopeClaims) -> dict[str, Any]:
    return {name: getattr(claims, name) for name in EnvelopeClaims.__slots__}


def test_open_accepts_an_already_imported_key(
    rings: dict[str, CouncilKeyring], partners: dict[str, tuple[dict[str, Any], PartnerKey]]
) -> None:
    enc, key = partners["rsa"]
    sealed = seal(claims_for(key.partner_id, KB), rings["ES256"].active_signer(T0), key)
    opened = open_envelope(
        sealed.body,
        decryption_key=jose.import_private_jwk(enc),
        council_jwks=rings["ES256"].jwks(T0),
        expected_audience=key.partner_id,
        now=T0,
    )
    assert opened["jti"] == "d-0001"
    with pytest.raises(EnvelopeError) as caught:
        open_envelope(
            sealed.body,
            decryption_key=public_jwk(enc),
            council_jwks=rings["ES256"].jwks(T0),
            expected_audience=key.partner_id,
            now=T0,
        )
    assert caught.value.code == "envelope_key_invalid"
