"""Sealing in a worker process gives what sealing in-line gives: the envelope, or the error."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

from gateway import seal_pool, worker_link
from gateway.keys import CouncilKeyring, PartnerKey, generate_partner_keys, public_jwk
from gateway.seal_pool import SealPool
from gateway.sealing import AgreementRef, EnvelopeClaims, EnvelopeError, open_envelope

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
PARTNER = "partner-ec"


def claims(jti: str, *, aud: str = PARTNER) -> EnvelopeClaims:
    return EnvelopeClaims(
        iss="medway-council",
        aud=aud,
        jti=jti,
        iat=T0,
        agreement=AgreementRef("KM-DOM-006", 2),
        purpose="direct_care",
        subject={"local_id": "SYN-0001"},  # synthetic
        data={"needs": {"mobility": "hoist"}},
        retain_until=date(2027, 3, 2),
        onward_sharing="prohibited",
    )


@pytest.fixture
def keyring(tmp_path: Path) -> CouncilKeyring:
    ring = CouncilKeyring(tmp_path / "keys")
    ring.generate("ES256", T0 - timedelta(days=1))
    return ring


@pytest.fixture
def partner() -> tuple[dict[str, Any], PartnerKey]:
    enc, _ = generate_partner_keys("ec")
    return enc, PartnerKey.from_jwk(PARTNER, public_jwk(enc), use="enc")


@pytest.fixture
async def pool(keyring: CouncilKeyring) -> AsyncIterator[SealPool]:
    seals = SealPool(keyring.directory)
    await seals.start()
    yield seals
    await seals.close()


async def test_envelopes_sealed_in_the_worker_open_for_the_partner(
    pool: SealPool, keyring: CouncilKeyring, partner: tuple[dict[str, Any], PartnerKey]
) -> None:
    private, key = partner
    sealed = await asyncio.gather(*(pool.seal(claims(f"d-{i}"), key) for i in range(20)))
    assert [s.signing_kid for s in sealed] == [keyring.active_signer(T0).kid] * 20
    for i, envelope in enumerate(sealed):
        opened = open_envelope(
            envelope.body,
            decryption_key=private,
            council_jwks=keyring.jwks(T0),
            expected_audience=PARTNER,
            now=T0,
        )
        assert opened["jti"] == f"d-{i}"
        assert opened["data"] == {"needs": {"mobility": "hoist"}}


async def test_a_refused_seal_raises_the_same_error_as_in_line(
    pool: SealPool, partner: tuple[dict[str, Any], PartnerKey]
) -> None:
    _, key = partner
    with pytest.raises(EnvelopeError) as refused:
        await pool.seal(claims("d-1", aud="someone-else"), key)
    assert refused.value.code == "envelope_wrong_recipient"
    assert (await pool.seal(claims("d-2"), key)).encryption_kid == key.kid  # still working


async def test_if_the_worker_dies_sealing_goes_on_in_line(
    pool: SealPool, partner: tuple[dict[str, Any], PartnerKey]
) -> None:
    _, key = partner
    pool._process.kill()  # what an OOM kill would do
    sealed = await asyncio.gather(*(pool.seal(claims(f"d-{i}"), key) for i in range(5)))
    assert len({s.digest for s in sealed}) == 5


async def test_a_wedged_worker_does_not_hold_requests(
    pool: SealPool, partner: tuple[dict[str, Any], PartnerKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, key = partner
    monkeypatch.setattr(seal_pool, "WORKER_TIMEOUT_SECONDS", 0.2)
    os.kill(pool._process.pid, signal.SIGSTOP)  # alive, but answering nothing
    try:
        sealed = await asyncio.wait_for(
            asyncio.gather(*(pool.seal(claims(f"d-{i}"), key) for i in range(3))), timeout=5
        )
    finally:
        os.kill(pool._process.pid, signal.SIGCONT)
    assert [s.encryption_kid for s in sealed] == [key.kid] * 3


async def test_start_returns_once_the_worker_has_imported_and_answers(
    pool: SealPool, partner: tuple[dict[str, Any], PartnerKey]
) -> None:
    _, key = partner
    assert pool.ready
    assert pool._pool is not None
    assert pool._pool.usable  # its socket open, its answers read
    assert (await pool.seal(claims("d-1"), key)).encryption_kid == key.kid


def _never_ready(connection: Connection, keys_dir: str) -> None:
    """A worker stuck before its handshake: it only waits for the parent to hang up."""
    with contextlib.suppress(EOFError, OSError):
        connection.recv_bytes()


async def test_a_worker_that_never_starts_leaves_sealing_in_line(
    keyring: CouncilKeyring,
    partner: tuple[dict[str, Any], PartnerKey],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, key = partner
    monkeypatch.setattr(seal_pool, "_work", _never_ready)
    monkeypatch.setattr(worker_link, "START_TIMEOUT_SECONDS", 0.5)
    seals = SealPool(keyring.directory)
    await seals.start()
    try:
        assert not seals.ready
        sealed = await asyncio.wait_for(seals.seal(claims("d-1"), key), timeout=5)
        assert sealed.encryption_kid == key.kid
    finally:
        await seals.close()
    assert not seals._process.is_alive()
