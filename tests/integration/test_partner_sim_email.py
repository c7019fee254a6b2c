"""`gateway partner-sim --channel email`: a real process the email channel sends mail to."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.email import EmailChannel, SmtpOptions
from gateway.application.channel import DeliveryOutcome, Envelope
from gateway.keys import CouncilKeyring, PartnerKey
from gateway.partner_sim.cli import receipts_url
from gateway.partner_sim.key_pairs import PUBLIC_ENC, PUBLIC_SIG
from gateway.receipts import verify_receipt
from gateway.sealing import seal
from tests.integration.test_partner_sim_cli import GATEWAY, claims, now

ServerFactory = Callable[..., Awaitable[TestServer]]
PARTNER = "probation-kss"
MESSAGE_ID = "0193a1b2-0000-7000-8000-000000000007"


@pytest.fixture
def council(tmp_path: Path) -> CouncilKeyring:
    keyring = CouncilKeyring(tmp_path / "council")
    keyring.generate("ES256", now())
    return keyring


@pytest.fixture
async def council_api(
    council: CouncilKeyring, aiohttp_server: ServerFactory
) -> tuple[str, list[bytes]]:
    """The council's JWKS and POST /v1/receipts, keeping each receipt posted."""
    posted: list[bytes] = []

    async def jwks(_: web.Request) -> web.Response:
        return web.json_response(council.jwks(now()))

    async def receipts(request: web.Request) -> web.Response:
        posted.append(await request.read())
        return web.json_response({"status": "receipted"})

    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", jwks)
    app.router.add_post("/v1/receipts", receipts)
    return str((await aiohttp_server(app)).make_url("/.well-known/jwks.json")), posted


def _options(port: int, ca_bundle: Path | None) -> SmtpOptions:
    return SmtpOptions(
        host="localhost",
        port=port,
        from_address="disclosures@medway-council.example",
        council="medway-council",
        ca_bundle=str(ca_bundle) if ca_bundle else None,
        timeout=10,
    )


def test_receipts_go_to_the_councils_api_beside_its_jwks() -> None:
    assert receipts_url("https://gw.example:8443/.well-known/jwks.json") == (
        "https://gw.example:8443/v1/receipts"
    )


@pytest.fixture
async def mail_partner(
    tmp_path: Path, council_api: tuple[str, list[bytes]]
) -> AsyncIterator[tuple[asyncio.subprocess.Process, int, Path]]:
    process = await asyncio.create_subprocess_exec(
        str(GATEWAY), "partner-sim", "--port", "0", "--keys", str(tmp_path / "partner"),
        "--partner-id", PARTNER, "--council-jwks", council_api[0], "--channel", "email",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        lines = [(await asyncio.wait_for(process.stdout.readline(), 30)).decode() for _ in range(4)]
        listening, receiving, settings, posted_to = lines
        assert " listening on " in listening, listening
        assert "(STARTTLS required)" in receiving, receiving
        assert receipts_url(council_api[0]) in posted_to, posted_to
        port = int(receiving.split("127.0.0.1:")[1].split()[0])
        ca_bundle = Path(settings.split("GATEWAY_SMTP_CA_BUNDLE=")[1].strip())
        yield process, port, ca_bundle
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_partner_takes_in_the_mail_and_posts_its_receipt(
    tmp_path: Path,
    council: CouncilKeyring,
    council_api: tuple[str, list[bytes]],
    mail_partner: tuple[asyncio.subprocess.Process, int, Path],
) -> None:
    process, port, ca_bundle = mail_partner
    enc = json.loads((tmp_path / "partner" / PUBLIC_ENC).read_text())
    sig = json.loads((tmp_path / "partner" / PUBLIC_SIG).read_text())
    sealed = seal(
        claims(PARTNER, MESSAGE_ID),
        council.active_signer(now()),
        PartnerKey.from_jwk(PARTNER, enc, use="enc"),
    )
    channel = EmailChannel(_options(port, ca_bundle))
    envelope = Envelope(MESSAGE_ID, PARTNER, sealed.body, sealed.digest)
    result = await channel.deliver(envelope, {"address": "mappa.kss@probation.cjsm.example"})
    assert result.outcome is DeliveryOutcome.DISPATCHED, result

    posted = council_api[1]
    for _ in range(100):
        if posted:
            break
        await asyncio.sleep(0.1)
    [token] = posted
    verified = verify_receipt(
        token,
        partner_keys=[PartnerKey.from_jwk(PARTNER, sig, use="sig")],
        partner_id=PARTNER,
        council_id="medway-council",
        message_id=MESSAGE_ID,
        expected_digest=sealed.digest,
        now=now(),
    )
    assert verified.status == "received"

    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 10) == 0


async def test_a_channel_that_does_not_trust_the_partners_ca_sends_nothing(
    council_api: tuple[str, list[bytes]],
    mail_partner: tuple[asyncio.subprocess.Process, int, Path],
) -> None:
    _process, port, _ca = mail_partner
    channel = EmailChannel(_options(port, None))
    body = b"eyJhbGciOiJFQ0RILUVTK0EyNTZLVyJ9.x"
    result = await channel.deliver(
        Envelope(MESSAGE_ID, PARTNER, body, "d"), {"address": "mappa.kss@probation.cjsm.example"}
    )
    assert result.outcome is DeliveryOutcome.TRANSIENT
    assert result.reason == "smtp_tls_failed"
    assert council_api[1] == []
