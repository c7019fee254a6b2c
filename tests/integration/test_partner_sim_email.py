"""`gateway partner-sim --channel email`: a real process the email channel sends mail to."""

from __future__ import annotations

import asyncio
import json
import signal
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiosmtpd.controller import Controller

from adapters.email import EmailChannel, SmtpOptions
from adapters.mail_replies import read_reply
from gateway.application.channel import DeliveryOutcome, Envelope
from gateway.application.inbound import ReceiptReply
from gateway.cli.main import main
from gateway.keys import CouncilKeyring, PartnerKey
from gateway.partner_sim.cli import receipts_url
from gateway.partner_sim.key_pairs import PUBLIC_ENC, PUBLIC_SIG
from gateway.receipts import verify_receipt
from gateway.sealing import seal
from tests.integration.test_email import PartnerMta
from tests.integration.test_partner_sim_cli import GATEWAY, claims, now
from tests.mesh_sandbox import free_port, make_test_pki

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


def test_mailed_receipts_need_the_email_channel_and_a_server(tmp_path: Path) -> None:
    base = ["partner-sim", "--port", "0", "--keys", str(tmp_path / "partner")]
    by_mail = ["--receipts-by-mail", "receipts@medway-council.example"]
    assert main([*base, *by_mail]) == 1  # webhook partner
    assert main([*base, "--channel", "email", *by_mail, "--receipts-smtp", "nowhere"]) == 1
    assert main([*base, "--channel", "email", *by_mail, "--receipts", "async"]) == 1


async def _start(
    tmp_path: Path, jwks_url: str, *extra: str
) -> tuple[asyncio.subprocess.Process, list[str]]:
    process = await asyncio.create_subprocess_exec(
        str(GATEWAY), "partner-sim", "--port", "0", "--keys", str(tmp_path / "partner"),
        "--partner-id", PARTNER, "--council-jwks", jwks_url, "--channel", "email", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    lines = [(await asyncio.wait_for(process.stdout.readline(), 30)).decode() for _ in range(4)]
    return process, lines


def _smtp_port(receiving_line: str) -> int:
    return int(receiving_line.split("127.0.0.1:")[1].split(maxsplit=1)[0])


@pytest.fixture
async def mail_partner(
    tmp_path: Path, council_api: tuple[str, list[bytes]]
) -> AsyncIterator[tuple[asyncio.subprocess.Process, int, Path]]:
    process, lines = await _start(tmp_path, council_api[0])
    try:
        listening, receiving, settings, posted_to = lines
        assert " listening on " in listening, listening
        assert "(STARTTLS required)" in receiving, receiving
        assert receipts_url(council_api[0]) in posted_to, posted_to
        port = _smtp_port(receiving)
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


async def test_partner_mails_its_receipt_to_the_receipts_mailbox(
    tmp_path: Path, council: CouncilKeyring, council_api: tuple[str, list[bytes]]
) -> None:
    pki = make_test_pki(tmp_path / "mx-pki")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    council_mx, mx_port = PartnerMta(), free_port()
    controller = Controller(
        council_mx, hostname="127.0.0.1", port=mx_port, tls_context=context,
        require_starttls=True,
    )  # fmt: skip
    controller.start()
    process, lines = await _start(
        tmp_path, council_api[0], "--receipts-by-mail", "receipts@medway-council.example",
        "--receipts-smtp", f"localhost:{mx_port}", "--receipts-smtp-ca", str(pki.ca_cert),
    )  # fmt: skip
    try:
        assert "receipts mailed to: receipts@medway-council.example" in lines[3], lines
        ca_bundle = Path(lines[2].split("GATEWAY_SMTP_CA_BUNDLE=")[1].strip())
        enc = json.loads((tmp_path / "partner" / PUBLIC_ENC).read_text())
        sig = json.loads((tmp_path / "partner" / PUBLIC_SIG).read_text())
        sealed = seal(
            claims(PARTNER, MESSAGE_ID),
            council.active_signer(now()),
            PartnerKey.from_jwk(PARTNER, enc, use="enc"),
        )
        channel = EmailChannel(_options(_smtp_port(lines[1]), ca_bundle))
        envelope = Envelope(MESSAGE_ID, PARTNER, sealed.body, sealed.digest)
        result = await channel.deliver(envelope, {"address": "mappa.kss@probation.cjsm.example"})
        assert result.outcome is DeliveryOutcome.DISPATCHED, result
        for _ in range(100):
            if council_mx.messages:
                break
            await asyncio.sleep(0.1)
    finally:
        process.kill()
        await process.wait()
        controller.stop()
    [mail] = council_mx.messages
    assert council_mx.recipients == [["receipts@medway-council.example"]]
    reply = read_reply(mail.as_bytes())
    assert isinstance(reply, ReceiptReply)
    assert MESSAGE_ID in reply.answers  # a reply to the disclosure's own mail
    verified = verify_receipt(
        reply.token,
        partner_keys=[PartnerKey.from_jwk(PARTNER, sig, use="sig")],
        partner_id=PARTNER,
        council_id="medway-council",
        message_id=MESSAGE_ID,
        expected_digest=sealed.digest,
        now=now(),
    )
    assert verified.status == "received"
    assert council_api[1] == []  # mailed instead of posted
