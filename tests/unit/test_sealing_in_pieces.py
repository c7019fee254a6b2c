"""Envelopes written in pieces: the JWS and JWE we write are joserfc's, bit for bit where the
algorithms are deterministic; jwcrypto opens them; a large record is not copied whole."""

from __future__ import annotations

import base64
import gc
import itertools
import json
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from joserfc import jwe
from joserfc.jwk import ECKey, OKPKey
from jwcrypto import jwe as cjwe
from jwcrypto import jwk as cjwk
from jwcrypto import jws as cjws

from gateway import jose
from gateway.keys import CouncilKeyring, PartnerKey, generate_partner_keys, public_jwk
from gateway.sealing import (
    EnvelopeAgreement,
    EnvelopeClaims,
    EnvelopeError,
    claims_pieces,
    open_envelope,
    seal,
    sign_jwt,
)

T0 = datetime(2025, 7, 1, 8, 0, tzinfo=UTC)
KB = 1024
MB = 1024 * KB
# Characters of 1 to 4 UTF-8 bytes, so pieces end inside characters and off base64's 3 bytes.
TEXT = "Visit: child well, plan reviewed. Ffion's café, €20, 𝄞 "


def claims_for(partner: str, *, notes: int = 40, text: str = TEXT * 40) -> EnvelopeClaims:
    return EnvelopeClaims(
        iss="medway-council",
        aud=partner,
        jti="d-42",
        iat=T0,
        agreement=EnvelopeAgreement("isa-discharge", "2.1"),
        purpose="hospital_discharge",
        subject={"nhs_number": "9990007777"},
        data={"case_notes": [{"n": i, "text": text, "score": i / 7} for i in range(notes)]},
        retain_until=date(2027, 7, 1),
        onward_sharing="prohibited",
    )


@pytest.fixture(scope="module")
def rings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CouncilKeyring]:
    result = {}
    for alg in ("ES256", "Ed25519"):
        ring = CouncilKeyring(tmp_path_factory.mktemp("pieces") / alg)
        ring.generate(alg, T0 - timedelta(days=1))
        result[alg] = ring
    return result


@pytest.fixture(scope="module")
def partners() -> dict[str, tuple[dict[str, Any], PartnerKey]]:
    result = {}
    for kind in ("ec", "okp", "rsa"):
        enc, _ = generate_partner_keys(kind)
        result[kind] = (enc, PartnerKey.from_jwk(f"p-{kind}", public_jwk(enc), use="enc"))
    return result


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def test_the_claims_in_pieces_are_the_canonical_json() -> None:
    jwt = claims_for("p", notes=300).to_jwt()
    pieces = list(claims_pieces(jwt))
    assert len(pieces) > 3
    assert b"".join(pieces) == jose.canonical_json(jwt)
    assert json.loads(b"".join(pieces)) == jwt


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 100, 48 * KB - 1, 48 * KB, 48 * KB + 1])
def test_pieces_of_any_length_encode_as_one_base64(size: int) -> None:
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    cuts = sorted({cut for cut in (0, 1, 2, 7, size // 2, size - 1, size) if 0 <= cut <= size})
    pieces = [data[a:b] for a, b in itertools.pairwise(cuts)]
    assert b"".join(pieces) == data
    assert b"".join(jose._b64url_pieces(pieces)) == _b64(data)


@pytest.mark.parametrize("notes", [1, 400])
def test_an_eddsa_jws_is_joserfcs_bit_for_bit(rings: dict[str, CouncilKeyring], notes: int) -> None:
    signer = rings["Ed25519"].active_signer(T0)
    jwt = claims_for("p", notes=notes).to_jwt()
    ours = sign_jwt(jwt, signer)
    header = {"alg": "EdDSA", "kid": signer.kid, "typ": "JWT"}
    theirs = jose.sign_jws(jose.canonical_json(jwt), _private(rings["Ed25519"], signer.kid), header)
    assert ours == theirs


def test_an_es256_jws_has_joserfcs_header_and_payload_and_verifies(
    rings: dict[str, CouncilKeyring],
) -> None:
    ring = rings["ES256"]
    signer = ring.active_signer(T0)
    jwt = claims_for("p", notes=400).to_jwt()
    ours = sign_jwt(jwt, signer)
    header = {"alg": "ES256", "kid": signer.kid, "typ": "JWT"}
    theirs = jose.sign_jws(jose.canonical_json(jwt), _private(ring, signer.kid), header)
    assert ours.split(".")[:2] == theirs.split(".")[:2]
    payload = jose.verify_compact(ours, ring.jwks(T0))
    assert payload == jose.canonical_json(jwt)
    token = cjws.JWS()
    token.deserialize(ours)
    token.verify(cjwk.JWKSet.from_json(json.dumps(ring.jwks(T0))).get_key(signer.kid))


@pytest.mark.parametrize("kind", ["ec", "okp"])
def test_a_jwe_is_joserfcs_bit_for_bit_given_the_same_random_values(
    partners: dict[str, tuple[dict[str, Any], PartnerKey]],
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    """The content key, IV and ephemeral key fixed: our pieces and joserfc's whole message."""
    _, recipient = partners[kind]
    key = recipient.public_key()
    ephemeral = (
        ECKey.generate_key("P-256", private=True)
        if kind == "ec"
        else OKPKey.generate_key("X25519", private=True)
    )
    enc = jose.JWE_REGISTRY.get_enc(jose.CONTENT_ENCRYPTION)
    monkeypatch.setattr(enc, "generate_cek", lambda: b"k" * 32)
    monkeypatch.setattr(enc, "generate_iv", lambda: b"i" * 12)
    monkeypatch.setattr(
        type(ephemeral), "generate_key", classmethod(lambda *args, **kwargs: ephemeral)
    )
    header = {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "cty": "JWT", "kid": recipient.kid}
    plaintext = ("é€𝄞." * 70_000).encode()
    pieces = [plaintext[i : i + 40_001] for i in range(0, len(plaintext), 40_001)]
    ours = jose.encrypt_pieces(pieces, len(plaintext), key, header)
    theirs = jwe.encrypt_compact(header, plaintext, key, registry=jose.JWE_REGISTRY)
    assert ours.decode("ascii") == theirs


@pytest.mark.parametrize("kind", ["ec", "okp", "rsa"])
@pytest.mark.parametrize("alg", ["ES256", "Ed25519"])
def test_jwcrypto_and_joserfc_open_an_envelope_of_many_pieces(
    rings: dict[str, CouncilKeyring],
    partners: dict[str, tuple[dict[str, Any], PartnerKey]],
    alg: str,
    kind: str,
) -> None:
    enc, recipient = partners[kind]
    claims = claims_for(recipient.partner_id, notes=150)
    sealed = seal(claims, rings[alg].active_signer(T0), recipient)
    jwks = rings[alg].jwks(T0)
    outer = cjwe.JWE()
    outer.deserialize(sealed.body.decode(), key=cjwk.JWK(**enc))
    inner = cjws.JWS()
    inner.deserialize(outer.payload.decode())
    inner.verify(cjwk.JWKSet.from_json(json.dumps(jwks)).get_key(inner.jose_header["kid"]))
    assert json.loads(inner.payload) == claims.to_jwt()
    assert inner.payload == jose.canonical_json(claims.to_jwt())
    opened = open_envelope(
        sealed.body,
        decryption_key=enc,
        council_jwks=jwks,
        expected_audience=recipient.partner_id,
        now=T0,
    )
    assert opened == claims.to_jwt()
    assert (
        jwe.decrypt_compact(
            sealed.body, jose.import_private_jwk(enc), registry=jose.JWE_REGISTRY
        ).plaintext
        == outer.payload
    )


def test_a_large_payload_other_than_the_one_signed_is_refused(
    rings: dict[str, CouncilKeyring],
) -> None:
    signer = rings["ES256"].active_signer(T0)
    payload = b'{"a":"' + b"x" * 300 * KB + b'"}'
    signed = signer.sign_detached([payload[:1000], payload[1000:]])
    assert signed.signing_input is None
    token = signed.compact([payload])
    assert jose.verify_compact(token, rings["ES256"].jwks(T0)) == payload
    for other in ([payload.replace(b"xx", b"xy", 1)], [payload + b" "], [payload[:-1]]):
        with pytest.raises(jose.JoseFailure) as caught:
            signed.compact(other)
        assert caught.value.code == "jose_payload_changed"


def test_a_small_signature_keeps_its_signing_input(rings: dict[str, CouncilKeyring]) -> None:
    signer = rings["ES256"].active_signer(T0)
    signed = signer.sign_detached([b'{"a":', b"1}"])
    assert signed.signing_input == signed.header + b"." + _b64(b'{"a":1}')
    token = signed.compact([b'{"a":1}'])
    assert jose.verify_compact(token, rings["ES256"].jwks(T0)) == b'{"a":1}'


def test_claims_over_the_size_limit_are_refused_before_signing(
    rings: dict[str, CouncilKeyring],
    partners: dict[str, tuple[dict[str, Any], PartnerKey]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jose, "MAX_CLAIMS_BYTES", 100 * KB)
    _, recipient = partners["ec"]
    signer = rings["ES256"].active_signer(T0)
    with pytest.raises(EnvelopeError) as caught:
        seal(claims_for(recipient.partner_id, notes=200), signer, recipient)
    assert caught.value.code == "envelope_too_large"
    assert seal(claims_for(recipient.partner_id, notes=20), signer, recipient).body
    monkeypatch.setattr(jose, "MAX_CLAIMS_BYTES", 10 * KB)  # over it, and made whole
    with pytest.raises(EnvelopeError) as caught:
        seal(claims_for(recipient.partner_id, notes=20), signer, recipient)
    assert caught.value.code == "envelope_too_large"


@pytest.mark.parametrize("notes", [1, 300])
def test_claims_that_are_not_json_are_refused_made_whole_or_in_pieces(
    rings: dict[str, CouncilKeyring],
    partners: dict[str, tuple[dict[str, Any], PartnerKey]],
    notes: int,
) -> None:
    _, recipient = partners["ec"]
    claims = claims_for(recipient.partner_id, notes=notes)
    claims.data["case_notes"][-1]["score"] = float("nan")
    with pytest.raises(EnvelopeError) as caught:
        seal(claims, rings["ES256"].active_signer(T0), recipient)
    assert caught.value.code == "envelope_claims_invalid"
    assert "nan" not in str(caught.value).lower()


def test_sealing_a_large_record_holds_little_beside_the_envelope(
    rings: dict[str, CouncilKeyring], partners: dict[str, tuple[dict[str, Any], PartnerKey]]
) -> None:
    """Peak Python allocations while sealing 4 MB of notes: the envelope (4/3 of 4/3 of the
    claims) and pieces, not whole copies of the claims, the JWS or its base64."""
    _, recipient = partners["ec"]
    signer = rings["Ed25519"].active_signer(T0)
    claims = claims_for(recipient.partner_id, notes=400, text="n" * 10_000)
    size = len(jose.canonical_json(claims.to_jwt()))
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        sealed = seal(claims, signer, recipient)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert len(sealed.body) / size == pytest.approx(16 / 9, rel=0.01)
    assert peak / size < 2.1


def _private(ring: CouncilKeyring, kid: str) -> jose.JoseKey:
    return jose.import_private_jwk(json.loads((ring.directory / f"{kid}.jwk.json").read_text()))
