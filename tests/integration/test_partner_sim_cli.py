"""The partner simulator's key directory, and `gateway partner-sim` run as a real process."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import stat
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.webhook import WebhookChannel
from gateway.application.channel import DeliveryOutcome, Envelope
from gateway.cli.main import main
from gateway.keys import CouncilKeyring, PartnerKey
from gateway.partner_sim.key_pairs import (
    PRIVATE_ENC,
    PRIVATE_SIG,
    PUBLIC_ENC,
    PUBLIC_SIG,
    KeyType,
    PartnerKeyFilesError,
    load_or_create_keys,
)
from gateway.receipts import verify_receipt
from gateway.sealing import EnvelopeAgreement, EnvelopeClaims, open_envelope, seal

ServerFactory = Callable[..., Awaitable[TestServer]]
GATEWAY = Path(sys.executable).parent / "gateway"


def now() -> datetime:
    return datetime.now(UTC)


def claims(partner_id: str, message_id: str) -> EnvelopeClaims:
    return EnvelopeClaims(
        iss="medway-council",
        aud=partner_id,
        jti=message_id,
        iat=now(),
        agreement=EnvelopeAgreement("isa-domcare", 1),
        purpose="care_assessment",
        subject={"local_id": "SYN-000123"},
        data={"needs": {"personal_care": "synthetic"}},
        retain_until=date(2030, 1, 1),
        onward_sharing="prohibited",
    )


@pytest.fixture
def council(tmp_path: Path) -> CouncilKeyring:
    keyring = CouncilKeyring(tmp_path / "council")
    keyring.generate("ES256", now())
    return keyring


def test_first_start_writes_private_keys_0600_and_public_halves(tmp_path: Path) -> None:
    directory = tmp_path / "partner"
    keys = load_or_create_keys(directory)

    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for name in (PRIVATE_ENC, PRIVATE_SIG):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600
    enc = json.loads((directory / PUBLIC_ENC).read_text())
    sig = json.loads((directory / PUBLIC_SIG).read_text())
    assert "d" not in enc
    assert "d" not in sig
    assert (enc["kid"], enc["use"], enc["crv"]) == (keys.enc_kid, "enc", "P-256")
    assert (sig["kid"], sig["use"]) == (keys.sig_kid, "sig")
    assert keys.key_type is KeyType.EC
    assert "'d'" not in repr(keys)


def test_a_restart_loads_the_same_keys(tmp_path: Path) -> None:
    first = load_or_create_keys(tmp_path / "partner", KeyType.X25519)
    again = load_or_create_keys(tmp_path / "partner")
    assert (again.enc_kid, again.sig_kid) == (first.enc_kid, first.sig_kid)
    assert again.key_type is KeyType.X25519


def test_keys_of_another_type_are_refused(tmp_path: Path) -> None:
    load_or_create_keys(tmp_path / "partner", KeyType.EC)
    with pytest.raises(PartnerKeyFilesError, match="are ec, not x25519") as caught:
        load_or_create_keys(tmp_path / "partner", KeyType.X25519)
    assert caught.value.code == "partner_keys_invalid"


def test_a_private_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    load_or_create_keys(tmp_path / "partner")
    (tmp_path / "partner" / PRIVATE_SIG).chmod(0o644)
    with pytest.raises(PartnerKeyFilesError, match="must have mode 0600"):
        load_or_create_keys(tmp_path / "partner")


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"kty": "EC"}'])
def test_a_damaged_key_file_is_refused_without_echoing_it(tmp_path: Path, content: str) -> None:
    load_or_create_keys(tmp_path / "partner")
    path = tmp_path / "partner" / PRIVATE_ENC
    path.write_text(content)
    with pytest.raises(PartnerKeyFilesError, match="is not a private JWK") as caught:
        load_or_create_keys(tmp_path / "partner")
    assert content not in caught.value.message


@pytest.mark.parametrize("key_type", list(KeyType))
def test_every_key_type_opens_what_the_council_seals(
    tmp_path: Path, council: CouncilKeyring, key_type: KeyType
) -> None:
    keys = load_or_create_keys(tmp_path / "partner", key_type)
    enc = json.loads((tmp_path / "partner" / PUBLIC_ENC).read_text())
    sealed = seal(
        claims("p1", "d-1"),
        council.active_signer(now()),
        PartnerKey.from_jwk("p1", enc, use="enc"),
    )
    opened = open_envelope(
        sealed.body,
        decryption_key=keys.encryption,
        council_jwks=council.jwks(now()),
        expected_audience="p1",
        now=now(),
    )
    assert opened["jti"] == "d-1"


def test_bad_flags_are_refused_before_anything_starts(tmp_path: Path) -> None:
    keys = str(tmp_path / "partner")
    assert main(["partner-sim", "--port", "0", "--keys", keys, "--fail-rate", "2"]) == 2
    assert main(["partner-sim", "--port", "0", "--keys", keys, "--receipts", "async"]) == 1
    assert main(["partner-sim", "--port", "0", "--keys", keys, "--fail-rate", "0.6",
                 "--reject-rate", "0.6"]) == 1  # fmt: skip
    assert not (tmp_path / "partner").exists()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The command configures structlog onto this test's captured stderr: undo it after."""
    yield
    structlog.reset_defaults()


@pytest.mark.usefixtures("restore_logging")
def test_a_port_in_use_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["partner-sim", "--port", str(port), "--keys", str(tmp_path / "partner")])
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


@pytest.fixture
async def council_jwks_url(council: CouncilKeyring, aiohttp_server: ServerFactory) -> str:
    async def jwks(_: web.Request) -> web.Response:
        return web.json_response(council.jwks(now()))

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", jwks)
    server = await aiohttp_server(app)
    return str(server.make_url("/.well-known/jwks.json"))


@pytest.fixture
async def partner_process(
    tmp_path: Path, council_jwks_url: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    process = await asyncio.create_subprocess_exec(
        str(GATEWAY), "partner-sim", "--port", "0", "--keys", str(tmp_path / "partner"),
        "--partner-id", "dom-care-ltd", "--council-jwks", council_jwks_url, "--seed", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert " listening on " in line, line
        yield process, line.split(" listening on ")[1].split()[0]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_the_command_serves_a_partner_until_sigterm(
    tmp_path: Path, council: CouncilKeyring, partner_process: tuple[Any, str]
) -> None:
    process, url = partner_process
    enc = json.loads((tmp_path / "partner" / PUBLIC_ENC).read_text())
    sig = json.loads((tmp_path / "partner" / PUBLIC_SIG).read_text())
    sealed = seal(
        claims("dom-care-ltd", "d-42"),
        council.active_signer(now()),
        PartnerKey.from_jwk("dom-care-ltd", enc, use="enc"),
    )
    channel = WebhookChannel(allow_insecure_loopback=True, total_timeout=10)
    try:
        envelope = Envelope("d-42", "dom-care-ltd", sealed.body, sealed.digest)
        result = await channel.deliver(envelope, {"endpoint": url})
    finally:
        await channel.close()
    assert result.outcome is DeliveryOutcome.RECEIPTED
    assert result.receipt is not None
    receipt = verify_receipt(
        result.receipt,
        partner_keys=[PartnerKey.from_jwk("dom-care-ltd", sig, use="sig")],
        partner_id="dom-care-ltd",
        council_id="medway-council",
        message_id="d-42",
        expected_digest=sealed.digest,
        now=now(),
    )
    assert receipt.status == "received"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/healthz") as health:
            assert health.status == 200
        async with session.get(f"{url}/keys") as served:
            assert (await served.json())["sig"] == sig

    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 10) == 0
