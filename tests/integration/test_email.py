"""The email channel against aiosmtpd on loopback: STARTTLS required and verified."""

from __future__ import annotations

import email
import email.policy
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope

from adapters.email import EmailChannel, SmtpOptions
from gateway.application.channel import DeliveryOutcome, Envelope
from gateway.jose import b64url_digest
from tests.mesh_sandbox import SandboxPki, free_port, make_test_pki

PARTNER_ADDRESS = "bookings@hoo-short-breaks.example"


@dataclass
class PartnerMta:
    """The partner's mail server: keeps what it accepted; refuses recipients it is told to."""

    refuse: set[str] = field(default_factory=set)
    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: SmtpEnvelope, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        assert isinstance(envelope.content, bytes)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


@pytest.fixture
def pki(tmp_path: Path) -> SandboxPki:
    return make_test_pki(tmp_path / "pki")


def _server_tls(pki: SandboxPki) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    return context


@pytest.fixture
def mta(pki: SandboxPki) -> Iterator[tuple[PartnerMta, int]]:
    handler = PartnerMta()
    port = free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, tls_context=_server_tls(pki),
        require_starttls=True,
    )  # fmt: skip
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def options(port: int, pki: SandboxPki | None, **overrides: Any) -> SmtpOptions:
    values: dict[str, Any] = {
        "host": "localhost", "port": port, "from_address": "disclosures@medway-council.example",
        "council": "medway-council", "ca_bundle": str(pki.ca_cert) if pki else None,
        "timeout": 5.0,
    }  # fmt: skip
    values.update(overrides)
    return SmtpOptions(**values)


def envelope() -> Envelope:
    body = b"eyJhbGciOiJFQ0RILUVTK0EyNTZLVyJ9." + b"x" * 3000
    return Envelope(str(uuid.uuid4()), "hoo-short-breaks", body, b64url_digest(body))


async def test_envelope_is_attached_to_a_message_that_names_only_the_disclosure(
    mta: tuple[PartnerMta, int], pki: SandboxPki
) -> None:
    handler, port = mta
    sent = envelope()
    result = await EmailChannel(options(port, pki)).deliver(sent, {"address": PARTNER_ADDRESS})
    assert result.outcome is DeliveryOutcome.DISPATCHED, result
    [message] = handler.messages
    assert handler.recipients == [[PARTNER_ADDRESS]]
    assert message["Subject"] == sent.message_id
    assert message["To"] == PARTNER_ADDRESS
    assert message["Disposition-Notification-To"] == "disclosures@medway-council.example"
    assert result.detail["smtp_message_id"] == message["Message-ID"]
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == f"{sent.message_id}.jwe"
    assert attachment.get_content_type() == "application/jose"
    assert attachment.get_content() == sent.body  # receipts digest exactly these bytes
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    assert sent.message_id in text.get_content()
    assert "KM-" not in str(message)  # no agreement id anywhere


async def test_server_without_starttls_gets_nothing(pki: SandboxPki) -> None:
    handler = PartnerMta()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)  # plain text only
    controller.start()
    try:
        result = await EmailChannel(options(port, pki)).deliver(
            envelope(), {"address": PARTNER_ADDRESS}
        )
    finally:
        controller.stop()
    assert result.outcome is DeliveryOutcome.TRANSIENT
    assert result.reason == "smtp_tls_unavailable"
    assert handler.messages == []


async def test_certificate_that_does_not_verify_gets_nothing(
    mta: tuple[PartnerMta, int],
) -> None:
    handler, port = mta
    result = await EmailChannel(options(port, None)).deliver(  # the system CAs: not the test CA
        envelope(), {"address": PARTNER_ADDRESS}
    )
    assert result.outcome is DeliveryOutcome.TRANSIENT
    assert result.reason == "smtp_tls_failed"
    assert handler.messages == []


async def test_refused_recipient_is_permanent(mta: tuple[PartnerMta, int], pki: SandboxPki) -> None:
    handler, port = mta
    handler.refuse.add(PARTNER_ADDRESS)
    result = await EmailChannel(options(port, pki)).deliver(
        envelope(), {"address": PARTNER_ADDRESS}
    )
    assert result.outcome is DeliveryOutcome.PERMANENT
    assert result.reason == "smtp_recipient_refused"


async def test_no_server_is_transient() -> None:
    result = await EmailChannel(options(free_port(), None)).deliver(
        envelope(), {"address": PARTNER_ADDRESS}
    )
    assert result.outcome is DeliveryOutcome.TRANSIENT
    assert result.reason == "partner_unreachable"


async def test_bad_address_is_misconfigured() -> None:
    result = await EmailChannel(options(1, None)).deliver(envelope(), {"address": "a@b, c@d.ex"})
    assert (result.outcome, result.reason) == (DeliveryOutcome.PERMANENT, "channel_misconfigured")
