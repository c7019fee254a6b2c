"""`gateway partner-sim --channel sftp`: a real process the SFTP channel uploads to."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.sftp import (
    SftpChannel,
    SftpOptions,
    SftpReceiptPoller,
    load_or_create_ssh_key,
    public_key_line,
)
from gateway.application.channel import DeliveryOutcome, Envelope
from gateway.application.inbound import ReceiptFile, ReceiptVerdict
from gateway.cli.main import main
from gateway.keys import CouncilKeyring, PartnerKey
from gateway.partner_sim.key_pairs import PUBLIC_ENC, PUBLIC_SIG
from gateway.receipts import verify_receipt
from gateway.sealing import seal
from tests.integration.test_partner_sim_cli import GATEWAY, claims, now
from tests.integration.test_sftp import OnePartner

ServerFactory = Callable[..., Awaitable[TestServer]]
PARTNER = "dbs"


@pytest.fixture
def council(tmp_path: Path) -> CouncilKeyring:
    keyring = CouncilKeyring(tmp_path / "council")
    keyring.generate("ES256", now())
    return keyring


@pytest.fixture
async def jwks_url(council: CouncilKeyring, aiohttp_server: ServerFactory) -> str:
    async def jwks(_: web.Request) -> web.Response:
        return web.json_response(council.jwks(now()))

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", jwks)
    return str((await aiohttp_server(app)).make_url("/.well-known/jwks.json"))


def test_sftp_needs_the_councils_key(tmp_path: Path) -> None:
    keys = str(tmp_path / "partner")
    assert main(["partner-sim", "--port", "0", "--keys", keys, "--channel", "sftp"]) == 1


async def _lines(process: asyncio.subprocess.Process, count: int) -> list[str]:
    assert process.stdout is not None
    return [(await asyncio.wait_for(process.stdout.readline(), 30)).decode() for _ in range(count)]


@pytest.fixture
async def sftp_partner(
    tmp_path: Path, jwks_url: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, int, str, Path]]:
    client_key = tmp_path / "council-ssh" / "key"
    (tmp_path / "council.pub").write_text(public_key_line(load_or_create_ssh_key(client_key)))
    process = await asyncio.create_subprocess_exec(
        str(GATEWAY), "partner-sim", "--port", "0", "--keys", str(tmp_path / "partner"),
        "--partner-id", PARTNER, "--council-jwks", jwks_url, "--channel", "sftp",
        "--authorized-key", str(tmp_path / "council.pub"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        listening, serving, _channel, host_key = await _lines(process, 4)
        assert " listening on " in listening, listening
        assert " serving SFTP on 127.0.0.1:" in serving, serving
        port = int(serving.split("127.0.0.1:")[1].split()[0])
        yield process, port, host_key.split("host_key: ")[1].strip(), client_key
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_partner_takes_in_the_upload_and_leaves_a_receipt(
    tmp_path: Path,
    council: CouncilKeyring,
    sftp_partner: tuple[asyncio.subprocess.Process, int, str, Path],
) -> None:
    process, port, host_key, client_key = sftp_partner
    enc = json.loads((tmp_path / "partner" / PUBLIC_ENC).read_text())
    sig = json.loads((tmp_path / "partner" / PUBLIC_SIG).read_text())
    sealed = seal(
        claims(PARTNER, "d-7"),
        council.active_signer(now()),
        PartnerKey.from_jwk(PARTNER, enc, use="enc"),
    )
    target = {
        "host": "127.0.0.1", "port": port, "path": "/inbound", "receipts_path": "/outbound",
        "host_key": host_key,
    }  # fmt: skip
    channel = SftpChannel(SftpOptions(client_key=client_key, username="medway"))
    received: list[ReceiptFile] = []

    async def handle(file: ReceiptFile) -> ReceiptVerdict:
        received.append(file)
        return "accepted"

    try:
        envelope = Envelope("d-7", PARTNER, sealed.body, sealed.digest)
        result = await channel.deliver(envelope, target)
        assert result.outcome is DeliveryOutcome.DISPATCHED, result
        poller = SftpReceiptPoller(channel)
        for _ in range(100):
            await poller.poll_once(OnePartner(PARTNER, target, handle))
            if received:
                break
            await asyncio.sleep(0.1)
    finally:
        await channel.close()
    [receipt] = received
    verified = verify_receipt(
        receipt.body,
        partner_keys=[PartnerKey.from_jwk(PARTNER, sig, use="sig")],
        partner_id=PARTNER,
        council_id="medway-council",
        message_id="d-7",
        expected_digest=sealed.digest,
        now=now(),
    )
    assert verified.status == "received"
    root = tmp_path / "partner" / "sftp"
    assert (root / "inbound" / "processed" / "d-7.jwe").read_bytes() == sealed.body
    assert (root / "outbound" / "archive" / "d-7.receipt.jwt").exists()

    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 10) == 0
