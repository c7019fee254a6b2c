"""The council keyring: files, modes, rotation with overlap, retirement, JWKS."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from joserfc.jwk import ECKey

from gateway import jose
from gateway import keys as keys_module
from gateway.keys import CouncilKeyring, FileSigner, KeyringError, verify_compact

T0 = datetime(2025, 4, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def ring(tmp_path: Path) -> CouncilKeyring:
    return CouncilKeyring(tmp_path / "keys")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_key_is_active_and_its_private_file_is_mode_0600(ring: CouncilKeyring) -> None:
    key = ring.generate("ES256", T0)
    assert key.status == "active"
    private_file = ring.directory / f"{key.kid}.jwk.json"
    assert _mode(private_file) == 0o600
    assert _mode(ring.directory) == 0o700
    assert _mode(ring.directory / "keyring.json") == 0o600
    assert "d" in json.loads(private_file.read_text())
    assert ring.active_signer(T0).kid == key.kid


def test_metadata_holds_no_private_material_and_no_temp_file_is_left(
    ring: CouncilKeyring,
) -> None:
    ring.generate("ES256", T0)
    ring.generate("Ed25519", T0)
    metadata = json.loads((ring.directory / "keyring.json").read_text())
    assert all("d" not in k["public_jwk"] for k in metadata["keys"])
    assert sorted(p.name for p in ring.directory.iterdir() if p.suffix == ".tmp") == []


def test_signer_repr_never_shows_the_private_key(ring: CouncilKeyring) -> None:
    key = ring.generate("ES256", T0)
    signer = ring.active_signer(T0)
    private_d = json.loads((ring.directory / f"{key.kid}.jwk.json").read_text())["d"]
    assert private_d not in repr(signer)
    assert repr(signer) == f"FileSigner(kid={key.kid!r}, alg='ES256')"
    assert not hasattr(signer, "__dict__")


def test_no_active_key_is_a_clear_error(ring: CouncilKeyring) -> None:
    with pytest.raises(KeyringError) as caught:
        ring.active_signer(T0)
    assert caught.value.code == "signing_key_missing"


def test_unknown_alg_and_naive_times_are_refused(ring: CouncilKeyring) -> None:
    with pytest.raises(KeyringError):
        ring.generate("HS256", T0)
    with pytest.raises(KeyringError):
        ring.generate("ES256", datetime(2025, 4, 1))


def test_group_or_world_readable_private_key_is_refused(ring: CouncilKeyring) -> None:
    key = ring.generate("ES256", T0)
    (ring.directory / f"{key.kid}.jwk.json").chmod(0o644)
    with pytest.raises(KeyringError, match="0600"):
        CouncilKeyring(ring.directory).active_signer(T0)


def test_second_generated_key_is_pending_and_prepublished(ring: CouncilKeyring) -> None:
    first = ring.generate("ES256", T0)
    second = ring.generate("Ed25519", T0)
    assert second.status == "pending"
    assert ring.active_signer(T0).kid == first.kid
    assert {k["kid"] for k in ring.jwks(T0)["keys"]} == {first.kid, second.kid}


def test_rotate_activates_the_pending_key(ring: CouncilKeyring) -> None:
    ring.generate("ES256", T0)
    pending = ring.generate("Ed25519", T0)
    new = ring.rotate(T0 + DAY, overlap=7 * DAY)
    assert new.kid == pending.kid
    assert new.status == "active"
    assert ring.active_signer(T0 + DAY).alg == "EdDSA"  # Ed25519 keys sign under the RFC 8037 name


def test_rotation_overlap_then_retirement(ring: CouncilKeyring) -> None:
    old = ring.generate("ES256", T0)
    checkpoint = ring.active_signer(T0).sign_compact(b"audit checkpoint 1", typ=None)

    new = ring.rotate(T0 + DAY, overlap=7 * DAY)
    assert new.kid != old.kid
    assert ring.active_signer(T0 + DAY).kid == new.kid
    # During the overlap a message signed before rotation still verifies with the public JWKS.
    during = ring.jwks(T0 + 3 * DAY)
    assert {k["kid"] for k in during["keys"]} == {old.kid, new.kid}
    assert verify_compact(checkpoint, during) == b"audit checkpoint 1"
    # After the overlap the old key drops out of the JWKS on its own ...
    after = ring.jwks(T0 + 9 * DAY)
    assert [k["kid"] for k in after["keys"]] == [new.kid]
    with pytest.raises(jose.JoseFailure) as caught:
        verify_compact(checkpoint, after)
    assert caught.value.reason == "unknown_key"
    # ... and once retired it is gone from the JWKS even inside the overlap, private file too.
    retired = ring.retire(old.kid, T0 + 2 * DAY)
    assert retired.status == "retired"
    assert old.kid not in {k["kid"] for k in ring.jwks(T0 + 2 * DAY)["keys"]}
    assert not (ring.directory / f"{old.kid}.jwk.json").exists()
    with pytest.raises(jose.JoseFailure):
        verify_compact(checkpoint, ring.jwks(T0 + 2 * DAY))
    # Our own audit log can still check what the retired key signed.
    assert verify_compact(checkpoint, ring.verification_keys(T0 + 2 * DAY)) == (
        b"audit checkpoint 1"
    )


def test_the_active_key_cannot_be_retired(ring: CouncilKeyring) -> None:
    key = ring.generate("ES256", T0)
    with pytest.raises(KeyringError) as caught:
        ring.retire(key.kid, T0)
    assert caught.value.code == "key_active"
    with pytest.raises(KeyringError) as unknown:
        ring.retire("no-such-kid", T0)
    assert unknown.value.code == "key_unknown"


def test_list_survives_a_new_process_and_keeps_order(ring: CouncilKeyring) -> None:
    a = ring.generate("ES256", T0)
    b = ring.rotate(T0 + DAY, overlap=DAY)
    listed = CouncilKeyring(ring.directory).list()
    assert [k.kid for k in listed] == [a.kid, b.kid]
    assert [k.status for k in listed] == ["superseded", "active"]
    assert listed[0].published_until == T0 + 2 * DAY
    assert listed[0].to_dict()["public_jwk"]["alg"] == "ES256"


def test_jwks_entries_are_public_signing_keys(ring: CouncilKeyring) -> None:
    ring.generate("ES256", T0)
    ring.generate("Ed25519", T0)
    for jwk in ring.jwks(T0)["keys"]:
        assert jwk["use"] == "sig"
        assert jwk["alg"] in ("ES256", "EdDSA")
        assert "d" not in jwk
        assert jwk["kid"] == jose.import_public_jwk(jwk).thumbprint()


def test_a_corrupt_keyring_file_is_a_clear_error(ring: CouncilKeyring) -> None:
    ring.directory.mkdir(parents=True)
    (ring.directory / "keyring.json").write_text("{not json")
    with pytest.raises(KeyringError, match=r"keyring\.json"):
        ring.list()


def test_verify_compact_refuses_other_algorithms(ring: CouncilKeyring) -> None:
    key = ring.generate("ES256", T0)
    token = FileSigner(key.kid, _load(ring, key.kid)).sign_compact(b"x")
    _, payload, _ = token.split(".")
    forged_none = f"{_b64({'alg': 'none', 'kid': key.kid})}.{payload}."
    with pytest.raises(jose.JoseFailure) as caught:
        verify_compact(forged_none, ring.jwks(T0))
    assert caught.value.reason == "algorithm_not_allowed"
    assert verify_compact(token, ring.jwks(T0)) == b"x"


def _load(ring: CouncilKeyring, kid: str) -> jose.JoseKey:
    return jose.import_private_jwk(json.loads((ring.directory / f"{kid}.jwk.json").read_text()))


def _b64(header: dict[str, str]) -> str:
    import base64

    raw = json.dumps(header).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_a_key_whose_kid_would_begin_with_a_dash_is_made_again() -> None:
    """Such a kid reads as an option on the command line (`keys retire -Xy...`)."""
    made: list[str] = []

    def generate(alg: str) -> ECKey:
        while True:  # real keys; the first one offered has a thumbprint beginning with "-"
            key = ECKey.generate_key("P-256")
            if key.thumbprint().startswith("-") == (not made):
                made.append(key.thumbprint())
                return key

    key = keys_module._new_private_key("ES256", generate)
    assert len(made) == 2
    assert made[0].startswith("-")
    assert key.thumbprint() == made[1]
    assert not key.thumbprint().startswith("-")
