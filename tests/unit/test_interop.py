"""Interoperability with an independent JOSE implementation (jwcrypto), both directions."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jwcrypto import common as jwcrypto_common
from jwcrypto import jwe as cjwe
from jwcrypto import jwk as cjwk
from jwcrypto import jws as cjws

from gateway import jose
from gateway.keys import CouncilKeyring, PartnerKey, generate_partner_keys, public_jwk
from gateway.sealing import (
    EnvelopeAgreement,
    EnvelopeClaims,
    make_receipt,
    open_envelope,
    seal,
    verify_receipt,
)

T0 = datetime(2025, 7, 1, 8, 0, tzinfo=UTC)
COUNCIL = "medway-council"
MB = 1024 * 1024


def claims_for(partner: str, size: int = 2048) -> EnvelopeClaims:
    return EnvelopeClaims(
        iss=COUNCIL,
        aud=partner,
        jti="d-7",
        iat=T0,
        agreement=EnvelopeAgreement("isa-discharge", "2.1"),
        purpose="hospital_discharge",
        subject={"nhs_number": "9990007777", "local_id": "MC-000123"},
        data={"needs": {"personal_care": "synthetic"}, "padding": "p" * size},
        retain_until=date(2027, 7, 1),
        onward_sharing="listed",
    )


@pytest.fixture(scope="module")
def rings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CouncilKeyring]:
    result = {}
    for alg in ("ES256", "Ed25519"):
        ring = CouncilKeyring(tmp_path_factory.mktemp("interop") / alg)
        ring.generate(alg, T0 - timedelta(days=1))
        result[alg] = ring
    return result


@pytest.fixture(scope="module")
def partner_keys() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    return {kind: generate_partner_keys(kind) for kind in ("ec", "okp", "rsa")}  # type: ignore[misc]


def jwcrypto_open(body: bytes, enc: dict[str, Any], jwks: dict[str, Any]) -> dict[str, Any]:
    """How a partner on jwcrypto opens our envelope: decrypt, then verify by kid from our JWKS."""
    outer = cjwe.JWE()
    outer.deserialize(body.decode(), key=cjwk.JWK(**enc))
    assert outer.jose_header["cty"] == "JWT"
    inner = cjws.JWS()
    inner.deserialize(outer.payload.decode())
    key = cjwk.JWKSet.from_json(json.dumps(jwks)).get_key(inner.jose_header["kid"])
    inner.verify(key)
    result: dict[str, Any] = json.loads(inner.payload)
    return result


@pytest.mark.parametrize("kind", ["ec", "okp", "rsa"])
@pytest.mark.parametrize("alg", ["ES256", "Ed25519"])
def test_jwcrypto_opens_what_we_seal(
    rings: dict[str, CouncilKeyring],
    partner_keys: dict[str, tuple[dict[str, Any], dict[str, Any]]],
    alg: str,
    kind: str,
) -> None:
    enc, _ = partner_keys[kind]
    recipient = PartnerKey.from_jwk(f"p-{kind}", public_jwk(enc), use="enc")
    claims = claims_for(recipient.partner_id)
    sealed = seal(claims, rings[alg].active_signer(T0), recipient)
    assert jwcrypto_open(sealed.body, enc, rings[alg].jwks(T0)) == claims.to_jwt()


def test_jwcrypto_opens_a_10mb_envelope(
    rings: dict[str, CouncilKeyring],
    partner_keys: dict[str, tuple[dict[str, Any], dict[str, Any]]],
) -> None:
    enc, _ = partner_keys["ec"]
    recipient = PartnerKey.from_jwk("p-ec", public_jwk(enc), use="enc")
    claims = claims_for("p-ec", 10 * MB)
    sealed = seal(claims, rings["ES256"].active_signer(T0), recipient)
    assert (
        len(jwcrypto_open(sealed.body, enc, rings["ES256"].jwks(T0))["data"]["padding"]) == 10 * MB
    )


def test_jwcrypto_follows_rotation_overlap_then_retirement(
    tmp_path: Path, partner_keys: dict[str, tuple[dict[str, Any], dict[str, Any]]]
) -> None:
    enc, _ = partner_keys["ec"]
    recipient = PartnerKey.from_jwk("p-ec", public_jwk(enc), use="enc")
    ring = CouncilKeyring(tmp_path / "keys")
    old = ring.generate("ES256", T0 - timedelta(days=10))
    sealed = seal(claims_for("p-ec"), ring.active_signer(T0), recipient)
    ring.rotate(T0 + timedelta(hours=1), overlap=timedelta(days=2))
    during = ring.jwks(T0 + timedelta(days=1))
    assert jwcrypto_open(sealed.body, enc, during)["jti"] == "d-7"
    ring.retire(old.kid, T0 + timedelta(days=1))
    after = ring.jwks(T0 + timedelta(days=1))
    assert cjwk.JWKSet.from_json(json.dumps(after)).get_key(old.kid) is None
    with pytest.raises(jwcrypto_common.JWException):
        jwcrypto_open(sealed.body, enc, after)


def jwcrypto_sign(claims: dict[str, Any], private: dict[str, Any], alg: str) -> str:
    token = cjws.JWS(json.dumps(claims).encode())
    header = {"alg": alg, "typ": "JWT", "kid": private["kid"]}
    token.add_signature(cjwk.JWK(**private), None, json.dumps(header))
    result: str = token.serialize(compact=True)
    return result


@pytest.mark.parametrize(("kind", "alg"), [("ec", "ES256"), ("okp", "EdDSA"), ("okp", "Ed25519")])
def test_receipts_made_by_jwcrypto_verify(
    partner_keys: dict[str, tuple[dict[str, Any], dict[str, Any]]], kind: str, alg: str
) -> None:
    _, sig = partner_keys[kind]
    body = b"the exact envelope bytes"
    claims = {
        "iss": "kent-police",
        "aud": COUNCIL,
        "jti": "rcpt-1",
        "iat": int(T0.timestamp()),
        "message_id": "d-7",
        "digest": jose.b64url_digest(body),
        "status": "received",
    }
    token = jwcrypto_sign(claims, sig, alg)
    registered = PartnerKey.from_jwk("kent-police", public_jwk(sig), use="sig")
    verified = verify_receipt(
        token.encode(),
        partner_keys=[registered],
        partner_id="kent-police",
        council_id=COUNCIL,
        message_id="d-7",
        expected_digest=jose.b64url_digest(body),
        now=T0,
    )
    assert (verified.receipt_id, verified.kid) == ("rcpt-1", sig["kid"])


@pytest.mark.parametrize("kind", ["ec", "okp"])
def test_jwcrypto_verifies_our_receipts(
    partner_keys: dict[str, tuple[dict[str, Any], dict[str, Any]]], kind: str
) -> None:
    _, sig = partner_keys[kind]
    token = make_receipt(
        partner_id="cqc",
        council_id=COUNCIL,
        message_id="d-7",
        body_received=b"bytes",
        status="rejected",
        reason="not_expected",
        signing_key=sig,
        now=T0,
        receipt_id="r-2",
    )
    parsed = cjws.JWS()
    parsed.deserialize(token.decode())
    parsed.verify(cjwk.JWK(**public_jwk(sig)))
    assert json.loads(parsed.payload)["digest"] == jose.b64url_digest(b"bytes")


@pytest.mark.parametrize(("kind", "wrap"), [("ec", "ECDH-ES+A256KW"), ("rsa", "RSA-OAEP-256")])
def test_our_partner_side_opens_a_jwcrypto_nested_jwt(
    partner_keys: dict[str, tuple[dict[str, Any], dict[str, Any]]], kind: str, wrap: str
) -> None:
    """The reverse direction: a nested JWT built entirely by jwcrypto opens with open_envelope."""
    enc, _ = partner_keys[kind]
    council = cjwk.JWK.generate(kty="EC", crv="P-256", kid="council-2025")
    council_jwks = {"keys": [json.loads(council.export_public())]}
    claims = claims_for(f"p-{kind}").to_jwt()
    signed = jwcrypto_sign(claims, json.loads(council.export_private()), "ES256")
    outer = cjwe.JWE(
        signed.encode(),
        json.dumps({"alg": wrap, "enc": "A256GCM", "cty": "JWT", "kid": enc["kid"]}),
    )
    outer.add_recipient(cjwk.JWK(**public_jwk(enc)))
    body = outer.serialize(compact=True).encode()
    opened = open_envelope(
        body, decryption_key=enc, council_jwks=council_jwks, expected_audience=f"p-{kind}", now=T0
    )
    assert opened == claims
