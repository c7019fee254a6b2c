"""Attacks on envelopes, each refused by the partner side with its own reason code."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import string
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from joserfc import jwe
from joserfc.jwk import ECKey

from gateway import jose
from gateway.keys import CouncilKeyring, PartnerKey, generate_partner_keys, public_jwk
from gateway.sealing import EnvelopeAgreement, EnvelopeClaims, EnvelopeError, open_envelope, seal

T0 = datetime(2025, 5, 6, 10, 30, tzinfo=UTC)
NHS_NUMBER = "9990004321"  # synthetic


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: dict[str, Any]) -> str:
    return b64(json.dumps(value).encode())


class World:
    """The council and two partners, A and B, each with their own encryption key."""

    def __init__(self, directory: Path) -> None:
        self.ring = CouncilKeyring(directory)
        self.ring.generate("ES256", T0 - timedelta(days=1))
        self.enc_a, _ = generate_partner_keys("ec")
        self.enc_b, _ = generate_partner_keys("okp")
        self.key_a = PartnerKey.from_jwk("partner-a", public_jwk(self.enc_a), use="enc")
        self.key_b = PartnerKey.from_jwk("partner-b", public_jwk(self.enc_b), use="enc")
        self.claims = EnvelopeClaims(
            iss="medway-council",
            aud="partner-a",
            jti="d-42",
            iat=T0,
            agreement=EnvelopeAgreement("isa-mash", 1),
            purpose="safeguarding_children",
            subject={"nhs_number": NHS_NUMBER},
            data={"concern": "synthetic text"},
            retain_until=date(2030, 1, 1),
            onward_sharing="prohibited",
        )
        self.body = seal(self.claims, self.ring.active_signer(T0), self.key_a).body

    def open(self, body: bytes | str, *, key: dict[str, Any] | None = None, **kw: Any) -> Any:
        data = body.encode() if isinstance(body, str) else body
        options: dict[str, Any] = {"expected_audience": "partner-a", "now": T0}
        options.update(kw)
        return open_envelope(
            data,
            decryption_key=key or self.enc_a,
            council_jwks=options.pop("jwks", self.ring.jwks(T0)),
            **options,
        )

    def inner(self) -> str:
        return jose.decrypt_jwe(self.body, jose.import_private_jwk(self.enc_a)).decode()

    def rewrap(self, inner: str, **header: Any) -> str:
        """What any attacker can do: encrypt whatever they like to partner A's public key."""
        protected = {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "cty": "JWT"}
        protected.update(kid=self.key_a.kid, **header)
        return jose.encrypt_jwe(inner.encode(), self.key_a.public_key(), protected)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("attacks") / "keys")


def refused(world: World, body: bytes | str, code: str, **kw: Any) -> None:
    with pytest.raises(EnvelopeError) as caught:
        world.open(body, **kw)
    assert caught.value.code == code
    assert NHS_NUMBER not in str(caught.value)


def test_the_untouched_envelope_opens(world: World) -> None:
    assert world.open(world.body)["subject"] == {"nhs_number": NHS_NUMBER}


@pytest.mark.parametrize(
    ("segment", "name"), [(1, "key"), (2, "iv"), (3, "ciphertext"), (4, "tag")]
)
def test_tampered_segment_is_refused(world: World, segment: int, name: str) -> None:
    parts = world.body.decode().split(".")
    raw = bytearray(base64.urlsafe_b64decode(parts[segment] + "=" * (-len(parts[segment]) % 4)))
    raw[len(raw) // 2] ^= 0x01
    parts[segment] = b64(bytes(raw))
    refused(world, ".".join(parts), "envelope_decrypt_failed")


def test_tampered_protected_header_is_refused(world: World) -> None:
    parts = world.body.decode().split(".")
    header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    header["x-note"] = "added"
    refused(world, ".".join([b64json(header), *parts[1:]]), "envelope_decrypt_failed")


def test_tampered_inner_signature_is_refused(world: World) -> None:
    header, payload, signature = world.inner().split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    refused(world, world.rewrap(f"{header}.{payload}.{flipped}"), "envelope_bad_signature")


def test_changed_claims_under_the_old_signature_are_refused(world: World) -> None:
    header, _, signature = world.inner().split(".")
    forged = {**world.claims.to_jwt(), "purpose": "direct_care"}
    refused(
        world, world.rewrap(f"{header}.{b64json(forged)}.{signature}"), "envelope_bad_signature"
    )


def test_envelope_for_another_partners_key(world: World) -> None:
    refused(world, world.body, "envelope_wrong_key", key=world.enc_b, expected_audience="partner-b")
    no_kid = {k: v for k, v in world.enc_b.items() if k != "kid"}
    refused(world, world.body, "envelope_decrypt_failed", key=no_kid, expected_audience="partner-b")
    same_kind = {**generate_partner_keys("ec")[0], "kid": world.key_a.kid}
    refused(world, world.body, "envelope_decrypt_failed", key=same_kind)


def test_wrong_audience_or_issuer_is_refused(world: World) -> None:
    refused(world, world.body, "envelope_wrong_audience", expected_audience="partner-b")
    refused(world, world.body, "envelope_wrong_issuer", expected_issuer="kent-county-council")


def test_envelope_from_the_future_is_refused(world: World) -> None:
    refused(world, world.body, "envelope_not_yet_valid", now=T0 - timedelta(hours=1))


def test_alg_none_is_refused(world: World) -> None:
    kid = world.ring.active_signer(T0).kid
    unsigned = f"{b64json({'alg': 'none', 'kid': kid})}.{b64json(world.claims.to_jwt())}."
    refused(world, world.rewrap(unsigned), "envelope_algorithm_not_allowed")


def test_hs256_with_the_public_key_as_secret_is_refused(world: World) -> None:
    """The classic key-confusion attack: HMAC keyed with the published public key."""
    council_jwk = world.ring.jwks(T0)["keys"][0]
    header = b64json({"alg": "HS256", "typ": "JWT", "kid": council_jwk["kid"]})
    signing_input = f"{header}.{b64json(world.claims.to_jwt())}"
    for secret in (json.dumps(council_jwk).encode(), jose.import_public_jwk(council_jwk).as_pem()):
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        forged = f"{signing_input}.{b64(mac)}"
        refused(world, world.rewrap(forged), "envelope_algorithm_not_allowed")


def test_signature_by_an_unknown_or_retired_key_is_refused(world: World, tmp_path: Path) -> None:
    stranger = ECKey.generate_key("P-256")
    header = {"alg": "ES256", "typ": "JWT", "kid": stranger.thumbprint()}
    forged = jose.sign_jws(jose.canonical_json(world.claims.to_jwt()), stranger, header)
    refused(world, world.rewrap(forged), "envelope_unknown_key")
    # The same kid as the council's key, but signed by the stranger: a bad signature.
    header["kid"] = world.ring.active_signer(T0).kid
    imposter = jose.sign_jws(jose.canonical_json(world.claims.to_jwt()), stranger, header)
    refused(world, world.rewrap(imposter), "envelope_bad_signature")
    # A key the council retired is no longer in its JWKS, so what it signed stops verifying.
    ring = CouncilKeyring(tmp_path / "keys")
    old = ring.generate("ES256", T0 - timedelta(days=30))
    body = seal(world.claims, ring.active_signer(T0), world.key_a).body
    ring.rotate(T0 - timedelta(days=1), overlap=timedelta(days=7))
    assert world.open(body, jwks=ring.jwks(T0))["jti"] == "d-42"
    ring.retire(old.kid, T0)
    refused(world, body, "envelope_unknown_key", jwks=ring.jwks(T0))


def test_signature_alg_that_does_not_fit_the_key_is_refused(world: World) -> None:
    ed = generate_partner_keys("okp")[1]
    header = {"alg": "Ed25519", "typ": "JWT", "kid": world.ring.active_signer(T0).kid}
    forged = jose.sign_jws(
        jose.canonical_json(world.claims.to_jwt()), jose.import_private_jwk(ed), header
    )
    refused(world, world.rewrap(forged), "envelope_algorithm_not_allowed")


@pytest.mark.parametrize(
    "protected",
    [
        {"alg": "RSA1_5", "enc": "A256GCM"},
        {"alg": "ECDH-ES", "enc": "A256GCM"},
        {"alg": "ECDH-ES+A128KW", "enc": "A256GCM"},
        {"alg": "ECDH-ES+A256KW", "enc": "A128CBC-HS256"},
        {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "zip": "DEF"},
    ],
)
def test_jwe_algorithms_off_the_list_are_refused(world: World, protected: dict[str, str]) -> None:
    header = {**protected, "cty": "JWT", "kid": world.key_a.kid}
    # The attacker's own registry allows anything; ours must still say no.
    permissive = jwe.JWERegistry(algorithms=[protected["alg"], protected["enc"], "DEF"])
    try:
        token = jwe.encrypt_compact(
            header, world.inner(), world.key_a.public_key(), registry=permissive
        )
    except Exception:  # the library refused to even build it: fine too
        token = f"{b64json(header)}.AAAA.AAAA.AAAA.AAAA"
    refused(world, token, "envelope_algorithm_not_allowed")


def test_garbage_is_malformed_not_a_traceback(world: World) -> None:
    for junk in ("", "a.b.c.d", "....", "é.é.é.é.é", f"{b64(b'[1]')}.a.b.c.d"):
        refused(world, junk, "envelope_malformed")
    refused(world, world.rewrap("not-a-jws"), "envelope_malformed")
    refused(world, world.body, "envelope_key_invalid", key={**world.enc_a, "d": "AAAA"})


def test_oversized_input_is_refused_before_parsing(world: World) -> None:
    refused(world, b"a" * (jose.MAX_ENVELOPE_BYTES + 1), "envelope_too_large")


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_single_character_change_is_refused(world: World, data: st.DataObject) -> None:
    text = world.body.decode()
    position = data.draw(st.integers(0, len(text) - 1))
    replacement = data.draw(st.sampled_from(string.ascii_letters + string.digits + "-_."))
    assume(replacement != text[position])
    tampered = text[:position] + replacement + text[position + 1 :]
    assume(_decoded(tampered) != _decoded(text))  # base64url's spare low bits change nothing
    with pytest.raises(EnvelopeError):
        world.open(tampered)


def _decoded(token: str) -> list[bytes] | None:
    try:
        return [base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in token.split(".")]
    except ValueError:
        return None


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    raw=st.one_of(
        st.binary(max_size=400),
        st.text(alphabet=string.ascii_letters + string.digits + "-_.", max_size=400).map(
            str.encode
        ),
    )
)
def test_arbitrary_input_is_an_envelope_error_never_a_crash(world: World, raw: bytes) -> None:
    with pytest.raises(EnvelopeError):
        world.open(raw)
