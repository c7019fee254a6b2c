"""Ed25519 keys sign and publish as RFC 8037 `EdDSA` through one path (gateway.jose), and
both `EdDSA` and `Ed25519` verify: audit checkpoints after a rotation, envelopes, receipts."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from jwcrypto import jwk as jc_jwk
from jwcrypto import jws as jc_jws

from gateway import audit, jose
from gateway.audit_verify import JwksCheckpointVerifier, verify
from gateway.keys import CouncilKeyring, KeyringCheckpointSigner, PartnerKey
from gateway.partner_keys import generate_partner_keys, public_jwk
from gateway.receipts import verify_receipt
from gateway.store import audit_log as audit_sql
from gateway.store.tables import audit_checkpoints
from tests.integration.store_support import ADMIN, open_store

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
BODY = b"the.exact.envelope.bytes.sent"


class Clock:
    """A clock the test moves."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


async def test_checkpoints_verify_after_a_rotation_to_ed25519(
    database_url: str, tmp_path: Path
) -> None:
    ring, clock = CouncilKeyring(tmp_path / "keys"), Clock(T0)
    ring.generate("ES256", T0)
    signer = KeyringCheckpointSigner(ring, clock)
    async with open_store(database_url) as store:
        await audit.record(store, ADMIN, "x.before", at=T0)
        assert await audit.checkpoint(store, signer, at=T0) == 1
        clock.at = T0 + timedelta(minutes=10)
        ring.rotate(clock.at, overlap=timedelta(days=7), alg="Ed25519")
        await audit.record(store, ADMIN, "x.after", at=clock.at)
        assert await audit.checkpoint(store, signer, at=clock.at) == 2
        report = await verify(
            store, JwksCheckpointVerifier(ring.verification_keys(clock.at)), now=clock.at
        )
        async with store.read() as conn:
            rows = await audit_sql.read_checkpoints(conn)
    assert report.ok, report.broken
    assert report.checkpoints == 2
    assert [jose.read_header(row.token, 3)["alg"] for row in rows] == ["ES256", "EdDSA"]


async def test_a_checkpoint_signed_under_the_name_ed25519_still_verifies(
    sqlite_url: str, tmp_path: Path
) -> None:
    ring = CouncilKeyring(tmp_path / "keys")
    key = ring.generate("EdDSA", T0)
    private = jose.import_private_jwk(
        json.loads((tmp_path / "keys" / f"{key.kid}.jwk.json").read_text())
    )
    async with open_store(sqlite_url) as store:
        await audit.record(store, ADMIN, "x.done", at=T0)
        seq = await audit.checkpoint(store, KeyringCheckpointSigner(ring, lambda: T0), at=T0)
        async with store.read() as conn:
            row = (await audit_sql.read_checkpoints(conn))[0]
        header = {"alg": "Ed25519", "kid": key.kid, "typ": audit.CHECKPOINT_TYP}
        token = jose.sign_jws(audit.checkpoint_payload(seq, row.hash, row.at), private, header)

        async def resign(conn) -> None:  # type: ignore[no-untyped-def]
            await conn.execute(audit_checkpoints.update().values(token=token))

        await store.write(resign)
        report = await verify(store, JwksCheckpointVerifier(ring.verification_keys(T0)), now=T0)
    assert report.ok, report.broken
    assert report.checkpoints == 1


def test_the_council_publishes_and_signs_ed25519_as_eddsa(tmp_path: Path) -> None:
    """A library that knows only `EdDSA` (as Authlib does) verifies what we sign."""
    ring = CouncilKeyring(tmp_path / "keys")
    ring.generate("ES256", T0)
    ring.generate("Ed25519", T0)
    ring.rotate(T0, overlap=timedelta(days=7))
    published = ring.jwks(T0)["keys"]
    assert sorted(k["alg"] for k in published) == ["ES256", "EdDSA"]
    token = ring.active_signer(T0).sign_compact(b'{"hello":"partner"}')
    assert jose.read_header(token, 3)["alg"] == "EdDSA"
    ed = next(k for k in published if k["alg"] == "EdDSA")
    checked = jc_jws.JWS()
    checked.deserialize(token)
    checked.verify(jc_jwk.JWK(**ed), alg="EdDSA")
    assert checked.payload == b'{"hello":"partner"}'


def test_a_keyring_written_with_the_name_ed25519_reads_as_eddsa(tmp_path: Path) -> None:
    ring = CouncilKeyring(tmp_path / "keys")
    ring.generate("EdDSA", T0)
    path = tmp_path / "keys" / "keyring.json"
    raw = json.loads(path.read_text())
    for key in raw["keys"]:
        key["alg"] = key["public_jwk"]["alg"] = "Ed25519"
    path.write_text(json.dumps(raw))
    again = CouncilKeyring(tmp_path / "keys")
    assert again.list()[0].alg == "EdDSA"
    assert again.jwks(T0)["keys"][0]["alg"] == "EdDSA"
    token = again.active_signer(T0).sign_compact(b"{}")
    assert jose.verify_compact(token, again.jwks(T0)) == b"{}"


def test_a_receipt_signed_eddsa_by_another_library_verifies() -> None:
    """A partner on jwcrypto signs with `alg: EdDSA`; the receipt verifies."""
    _, private = generate_partner_keys("okp")
    registered = PartnerKey.from_jwk(
        "nhs-trust", {**public_jwk(private), "alg": "EdDSA"}, use="sig"
    )
    digest = base64.urlsafe_b64encode(hashlib.sha256(BODY).digest()).rstrip(b"=").decode()
    claims = {
        "iss": "nhs-trust",
        "aud": "medway-council",
        "jti": "r-eddsa-1",
        "iat": int(T0.timestamp()),
        "message_id": "d-1",
        "digest": digest,
        "status": "received",
    }
    signed = jc_jws.JWS(json.dumps(claims).encode())
    header = {"alg": "EdDSA", "kid": registered.kid, "typ": "JWT"}
    signed.add_signature(jc_jwk.JWK(**private), alg="EdDSA", protected=json.dumps(header))
    token = signed.serialize(compact=True).encode()
    verified = verify_receipt(
        token,
        partner_keys=[registered],
        partner_id="nhs-trust",
        council_id="medway-council",
        message_id="d-1",
        expected_digest=digest,
        now=T0,
    )
    assert (verified.receipt_id, verified.kid) == ("r-eddsa-1", registered.kid)
