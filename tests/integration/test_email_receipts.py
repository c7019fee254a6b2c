"""Receipts mailed back to the council's mailbox, read from a real Dovecot 2.3 over imaps.

The gateway sends a MAPPA disclosure to probation by email (aiosmtpd with STARTTLS plays
probation's mail server); the test plays probation: it opens the attachment, then puts replies
into the council's receipts mailbox with IMAP APPEND: a genuine receipt, forged, mismatched and
unknown ones, junk, and MDNs signed and unsigned. One poll takes them all.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aioimaplib import IMAP4_SSL
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from adapters.email import EmailChannel
from adapters.imap_receipts import ImapOptions, ImapReceiptMailbox, MailboxError
from gateway.application.commands import Queued
from gateway.application.inbound import InboundMail, MailVerdict, RefusedMail
from gateway.clients import Client
from gateway.delivery.email_receipts import PartnerCertificates
from gateway.delivery.engine import DeliveryOptions, DeliveryService, InboundPollers
from gateway.http.schemas import DisclosureSubmission
from gateway.receipts import make_receipt
from gateway.service import Gateway, receipts_mailbox, smtp_options
from gateway.store import disclosures
from tests.dovecot import PASSWORD, USER, Dovecot, running_dovecot
from tests.gateway_support import TEST_NOW, Harness, build_harness, isolated_settings
from tests.gateway_support import adult_submission as base_submission
from tests.integration.test_email import PartnerMta
from tests.mesh_sandbox import free_port, make_test_pki

PARTNER = "probation-kss"


@dataclass
class Journey:
    harness: Harness
    dovecot: Dovecot
    service: DeliveryService
    mta: PartnerMta
    signer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]


def _smime_identity(name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A partner's S/MIME signing certificate (self-signed: the gateway pins it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _certificates(pem: bytes) -> PartnerCertificates:
    """Probation's registered S/MIME certificate (the registry is another use case's)."""

    async def certificates(partner_id: str) -> tuple[bytes, ...]:
        return (pem,) if partner_id == PARTNER else ()

    return certificates


@pytest.fixture
def mta(tmp_path: Path) -> Iterator[tuple[PartnerMta, int, Path]]:
    pki = make_test_pki(tmp_path / "mta-pki")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    handler, port = PartnerMta(), free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True
    )
    controller.start()
    try:
        yield handler, port, pki.ca_cert
    finally:
        controller.stop()


@pytest.fixture
async def journey(tmp_path: Path, mta: tuple[PartnerMta, int, Path]) -> AsyncIterator[Journey]:
    handler, smtp_port, smtp_ca = mta
    signer = _smime_identity("probation-kss mail")
    pem = signer[1].public_bytes(serialization.Encoding.PEM)
    with running_dovecot() as dovecot:
        settings = isolated_settings(
            tmp_path, smtp_host="localhost", smtp_port=smtp_port, smtp_ca_bundle=str(smtp_ca),
            smtp_from="disclosures@medway-council.example", imap_host="localhost",
            imap_port=dovecot.port, imap_username=USER, imap_password=PASSWORD,
            imap_ca_bundle=str(dovecot.ca_bundle), imap_poll_seconds=3600, imap_timeout=5,
        )  # fmt: skip
        harness = await build_harness(settings, deliverable=None)
        channel = EmailChannel(smtp_options(settings))
        service = DeliveryService(
            settings=settings, store=harness.gateway.store, policy=harness.gateway.policy,
            intake=harness.gateway.receipts, metrics=harness.gateway.metrics,
            channels={"email": channel}, clock=harness.gateway.clock,
            options=DeliveryOptions(poll_interval=0.05),
            inbound=InboundPollers(mailbox=receipts_mailbox(settings)),
            certificates=_certificates(pem),
        )  # fmt: skip
        await service.start()
        try:
            yield Journey(harness, dovecot, service, handler, signer)
        finally:
            await service.stop(5)
            await harness.gateway.close()


async def _status(harness: Harness, disclosure_id: str) -> tuple[str, list[str]]:
    async with harness.gateway.store.read() as conn:
        found = await disclosures.get(conn, disclosure_id)
        events = await disclosures.timeline(conn, disclosure_id)
    assert found is not None
    return found.status.value, [event.type for event in events]


async def _dispatched(journey: Journey) -> tuple[str, EmailMessage]:
    """A disclosure sent to probation, and the mail its server received."""
    client = Client("case-system", frozenset({"KM-PRB-016"}))
    body = base_submission(agreement="KM-PRB-016", purpose="crime_prevention")
    result = await journey.harness.gateway.submit(
        client, DisclosureSubmission.model_validate(body).to_command()
    )
    assert isinstance(result, Queued), result
    deadline = time.monotonic() + 20
    while (await _status(journey.harness, result.id))[0] != "dispatched":
        assert time.monotonic() < deadline, await _status(journey.harness, result.id)
        await asyncio.sleep(0.05)
    [sent] = [m for m in journey.mta.messages if m["Subject"] == result.id]
    return result.id, sent


def _attachment(sent: EmailMessage) -> bytes:
    [part] = list(sent.iter_attachments())
    content = part.get_content()
    assert isinstance(content, bytes)
    return content


def _receipt(journey: Journey, message_id: str, body: bytes, key: Any) -> bytes:
    return make_receipt(
        partner_id=PARTNER, council_id=journey.harness.gateway.settings.org_id,
        message_id=message_id, body_received=body, status="received", signing_key=key,
        now=TEST_NOW, receipt_id=f"prb-{uuid.uuid4()}",
    )  # fmt: skip


def _reply(sent: EmailMessage, token: bytes | None, *, threaded: bool = True) -> bytes:
    """A reply to `sent` (naming it in Subject and In-Reply-To), or, not `threaded`, a new mail."""
    reply = EmailMessage()
    reply["From"] = "mappa.kss@probation.cjsm.example"
    reply["To"] = "receipts@medway-council.example"
    reply["Subject"] = f"Re: {sent['Subject']}" if threaded else "Receipt"
    if threaded:
        reply["In-Reply-To"] = sent["Message-ID"]
        reply["References"] = sent["Message-ID"]
    reply.set_content("Receipt attached.\n")
    if token is not None:
        reply.add_attachment(token, maintype="application", subtype="jose", filename="receipt.jwt")
    return reply.as_bytes()


def _mdn(sent: EmailMessage) -> EmailMessage:
    report = EmailMessage()
    report.set_content("The message was displayed.\n")
    report.make_mixed()
    notification = EmailMessage()
    notification.set_payload(
        "Reporting-UA: mail.probation.cjsm.example\r\n"
        "Final-Recipient: rfc822; mappa.kss@probation.cjsm.example\r\n"
        f"Original-Message-ID: {sent['Message-ID']}\r\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\r\n"
    )
    notification["Content-Type"] = "message/disposition-notification"
    report.attach(notification)
    report.replace_header(
        "Content-Type", 'multipart/report; report-type="disposition-notification"'
    )
    return report


def _signed(
    inner: EmailMessage, signer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
) -> bytes:
    key, cert = signer
    signed = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(inner.as_bytes().replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n"))
        .add_signer(cert, key, hashes.SHA256())
        .sign(serialization.Encoding.SMIME, [pkcs7.PKCS7Options.DetachedSignature])
    )
    headers = (
        b"From: mappa.kss@probation.cjsm.example\r\n"
        b"To: receipts@medway-council.example\r\n"
        b"Subject: Read: disclosure\r\n"
    )
    return headers + signed


async def _append(dovecot: Dovecot, *mails: bytes) -> None:
    context = ssl.create_default_context(cafile=str(dovecot.ca_bundle))
    client = IMAP4_SSL("localhost", dovecot.port, ssl_context=context, timeout=5)
    await client.wait_hello_from_server()
    assert (await client.login(USER, PASSWORD)).result == "OK"
    for mail in mails:
        assert (await client.append(mail, mailbox="INBOX")).result == "OK"
    await client.logout()


def _metric(journey: Journey, line: str) -> bool:
    return line in journey.harness.gateway.metrics.render().decode()


async def test_mailed_receipt_is_recorded_and_the_mail_archived(journey: Journey) -> None:
    disclosure_id, sent = await _dispatched(journey)
    _enc, sig_key = journey.harness.partner_keys[PARTNER]
    token = _receipt(journey, disclosure_id, _attachment(sent), sig_key)
    await _append(journey.dovecot, _reply(sent, token))

    counts = await journey.service.poll_mailbox()
    assert counts["accepted"] == 1
    assert (await _status(journey.harness, disclosure_id))[0] == "receipted"
    assert len(journey.dovecot.messages("Archive")) == 1
    assert journey.dovecot.messages() == []
    assert _metric(
        journey, 'gatehouse_channel_receipt_files_total{channel="email",verdict="accepted"} 1.0'
    )
    # The same reply again (a resend by the partner's mail system) changes nothing.
    await _append(journey.dovecot, _reply(sent, token))
    assert (await journey.service.poll_mailbox())["accepted"] == 1
    assert len(journey.dovecot.messages("Archive")) == 2


async def test_forged_mismatched_unknown_and_junk_mail_is_quarantined(journey: Journey) -> None:
    disclosure_id, sent = await _dispatched(journey)
    other_id, other_sent = await _dispatched(journey)
    body = _attachment(sent)
    _enc, sig_key = journey.harness.partner_keys[PARTNER]
    _enc, not_probation = journey.harness.partner_keys["kent-police"]
    forged = _receipt(journey, disclosure_id, body, not_probation)
    genuine_for_other = _receipt(journey, other_id, _attachment(other_sent), sig_key)
    unknown = _receipt(journey, str(uuid.uuid4()), body, sig_key)
    await _append(
        journey.dovecot,
        _reply(sent, forged),
        _reply(sent, genuine_for_other),  # a genuine receipt in reply to another disclosure
        _reply(sent, unknown, threaded=False),
        _reply(sent, None),  # no receipt attached
        _reply(sent, b"not a JWS"),
    )

    counts = await journey.service.poll_mailbox()
    assert counts["refused"] == 5
    assert counts["accepted"] == 0
    assert (await _status(journey.harness, disclosure_id))[0] == "dispatched"
    assert (await _status(journey.harness, other_id))[0] == "dispatched"
    assert len(journey.dovecot.messages("Quarantine")) == 5
    assert journey.dovecot.messages("Archive") == []
    for reason in (
        "receipt_unknown_key",
        "mail_receipt_mismatch",
        "receipt_unknown_message",
        "mail_no_receipt",
        "receipt_malformed",
    ):
        assert _metric(journey, f'gatehouse_mail_quarantined_total{{reason="{reason}"}} 1.0'), (
            reason
        )
    # Quarantined once: the next poll finds nothing to look at.
    assert sum((await journey.service.poll_mailbox()).values()) == 0


async def test_signed_mdn_is_a_transport_acknowledgement_not_a_receipt(journey: Journey) -> None:
    disclosure_id, sent = await _dispatched(journey)
    stranger = _smime_identity("someone else")
    await _append(
        journey.dovecot,
        _mdn(sent).as_bytes(),  # unsigned: proves nothing
        _signed(_mdn(sent), stranger),  # signed, not by probation's registered certificate
    )
    counts = await journey.service.poll_mailbox()
    assert counts == {
        "accepted": 0, "acknowledged": 0, "ignored": 1, "refused": 1, "retry": 0
    }  # fmt: skip
    status, events = await _status(journey.harness, disclosure_id)
    assert "transport_acknowledged" not in events

    await _append(journey.dovecot, _signed(_mdn(sent), journey.signer))
    assert (await journey.service.poll_mailbox())["acknowledged"] == 1
    status, events = await _status(journey.harness, disclosure_id)
    assert status == "dispatched"
    assert events.count("transport_acknowledged") == 1
    assert _metric(journey, 'gatehouse_mail_quarantined_total{reason="mdn_signature_invalid"} 1.0')
    assert len(journey.dovecot.messages("Archive")) == 2


async def test_a_receipt_in_an_smime_signed_reply_is_taken_too(journey: Journey) -> None:
    disclosure_id, sent = await _dispatched(journey)
    _enc, sig_key = journey.harness.partner_keys[PARTNER]
    reply = EmailMessage()
    reply.set_content("Receipt attached.\n")
    token = _receipt(journey, disclosure_id, _attachment(sent), sig_key)
    reply.add_attachment(token, maintype="application", subtype="jose", filename="r.jwt")
    # Whoever signed the mail, the receipt inside is a JWS the intake verifies on its own.
    await _append(journey.dovecot, _signed(reply, _smime_identity("a mail gateway")))
    assert (await journey.service.poll_mailbox())["accepted"] == 1
    assert (await _status(journey.harness, disclosure_id))[0] == "receipted"


async def test_a_mail_too_large_is_quarantined_unread(journey: Journey) -> None:
    _disclosure_id, sent = await _dispatched(journey)
    await _append(journey.dovecot, _reply(sent, b"x" * (1024 * 1024 + 1)))
    assert (await journey.service.poll_mailbox())["refused"] == 1
    assert len(journey.dovecot.messages("Quarantine")) == 1
    assert _metric(journey, 'gatehouse_mail_quarantined_total{reason="mail_too_large"} 1.0')


class Taker:
    """A `MailHandler` that takes every mail; no disclosure has MDN signers."""

    def __init__(self) -> None:
        self.handled: list[InboundMail] = []
        self.unreachable_reasons: list[str] = []

    async def __call__(self, mail: InboundMail) -> MailVerdict:
        self.handled.append(mail)
        return "accepted"

    async def signers(self, disclosure_id: str) -> None:
        return None

    def unreachable(self, reason: str) -> None:
        self.unreachable_reasons.append(reason)


async def test_an_unusable_mailbox_is_a_reason_not_a_crash() -> None:
    handle = Taker()

    with running_dovecot() as dovecot:
        good: dict[str, Any] = {
            "host": "localhost", "port": dovecot.port, "username": USER, "password": PASSWORD,
            "ca_bundle": str(dovecot.ca_bundle), "timeout": 5,
        }  # fmt: skip
        await _append(dovecot, b"Subject: hello\r\n\r\nbody\r\n")
        cases = {
            "imap_tls_failed": {"ca_bundle": None},  # the test CA is not a system CA
            "imap_unreachable": {"port": free_port()},
            "imap_inbox_missing": {"inbox": "Nowhere"},
        }
        for reason, change in cases.items():
            await _poll_fails(ImapOptions(**{**good, **change}), handle, reason)
        assert handle.handled == []
        # As the engine polls: the handler is told why, and nothing is raised.
        away = ImapOptions(**{**good, "port": free_port()})
        assert await ImapReceiptMailbox(away).poll_once(handle) == {"unreachable": 1}
        assert handle.unreachable_reasons == ["imap_unreachable"]
        # The same settings, put right, read the mail: the failures were the settings.
        assert (await ImapReceiptMailbox(ImapOptions(**good)).poll(handle))["accepted"] == 1
        assert handle.handled == [RefusedMail("mail_no_receipt")]
        # Last: Dovecot delays the next login from an address that just failed one.
        await _poll_fails(ImapOptions(**{**good, "password": "wrong"}), handle, "imap_auth_failed")


async def test_a_server_gone_mid_session_ends_the_poll_without_waiting_out_the_timeout() -> None:
    with running_dovecot() as dovecot:

        class DovecotDies(Taker):
            async def __call__(self, mail: InboundMail) -> MailVerdict:
                dovecot.stop()  # before the mail is moved: that command never gets an answer
                return await super().__call__(mail)

        await _append(dovecot, b"Subject: hello\r\n\r\nbody\r\n")
        options = ImapOptions(
            host="localhost", port=dovecot.port, username=USER, password=PASSWORD,
            ca_bundle=str(dovecot.ca_bundle), timeout=600,
        )  # fmt: skip
        handle = DovecotDies()
        # Within 30 s, where the 600 s timeout would be waited out without the drop noticed.
        caught = await asyncio.wait_for(_failed_reason(options, handle), 30)
        assert caught == "imap_failed"
        assert len(handle.handled) == 1


async def _failed_reason(options: ImapOptions, handle: Taker) -> str:
    with pytest.raises(MailboxError) as caught:
        await ImapReceiptMailbox(options).poll(handle)
    return caught.value.reason


async def _poll_fails(options: ImapOptions, handle: Taker, reason: str) -> None:
    assert await _failed_reason(options, handle) == reason


async def test_the_worker_role_polls_the_mailbox_configured_in_settings(tmp_path: Path) -> None:
    with running_dovecot() as dovecot:
        settings = isolated_settings(
            tmp_path, imap_host="localhost", imap_port=dovecot.port, imap_username=USER,
            imap_password=PASSWORD, imap_ca_bundle=str(dovecot.ca_bundle),
            imap_poll_seconds=0.2, imap_timeout=5,
        )  # fmt: skip
        gateway = await Gateway.open(settings, deliver=True)
        await gateway.start()
        try:
            await _append(dovecot, b"Subject: hello\r\n\r\nno receipt here\r\n")
            deadline = time.monotonic() + 10
            while not dovecot.messages("Quarantine"):
                assert time.monotonic() < deadline, "the mailbox was not polled"
                await asyncio.sleep(0.05)
            # The mailbox gone: the worker counts that it could not read it, and goes on.
            dovecot.stop()
            deadline = time.monotonic() + 10
            failed = 'gatehouse_mailbox_poll_failures_total{reason="imap_unreachable"}'
            while failed not in gateway.metrics.render().decode():
                assert time.monotonic() < deadline, "the failed poll was not counted"
                await asyncio.sleep(0.05)
        finally:
            await gateway.close(5)
        assert dovecot.messages() == []
