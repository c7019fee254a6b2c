"""The partner simulator as an email partner: an in-process SMTP server with STARTTLS required.

aiosmtpd serves SMTP on loopback in the simulator's own event loop, refusing mail until the
client has started TLS (the council's channel requires and verifies it; the certificate comes
from `tls_identity`). Each message's `<id>.jwt` attachment (the council-signed disclosure) or
`<id>.jwe` attachment (an envelope sealed to the partner) is opened like a webhook body; the
signed receipt then goes to the council's POST /v1/receipts (the simulator's receipt poster),
or, with a `ReceiptMailer`, by reply to the council's receipts mailbox. A simulated outage
answers 451, so the council's channel tries again later.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
from email.message import EmailMessage

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session

from gateway.partner_sim.config import ReceiptMode
from gateway.partner_sim.council_jwks import CouncilJwksError
from gateway.partner_sim.faults import Fault
from gateway.partner_sim.receipt_mailer import Answered, ReceiptMailer
from gateway.partner_sim.simulator import PartnerSimulator
from gateway.partner_sim.tls_identity import TlsIdentity

log = structlog.get_logger("gateway.partner_sim")

ENVELOPE_SUFFIXES = (".jwt", ".jwe")


def parse_mail(content: bytes) -> EmailMessage:
    """The council's mail as a message object."""
    message = email.message_from_bytes(content, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def envelope_attachments(message: EmailMessage) -> list[tuple[str, bytes]]:
    """(message id, bytes) of each `<id>.jwt` or `<id>.jwe` attachment of a mail."""
    found: list[tuple[str, bytes]] = []
    for part in message.iter_attachments():
        name = part.get_filename() or ""
        if name.endswith(ENVELOPE_SUFFIXES):
            body = part.get_content()
            data = body if isinstance(body, bytes) else str(body).encode()
            found.append((name[:-4], data.strip()))
    return found


class PartnerMailServer:
    """Receive the council's mail for one simulated partner and receipt what it holds."""

    def __init__(
        self,
        simulator: PartnerSimulator,
        identity: TlsIdentity,
        *,
        mailer: ReceiptMailer | None = None,
    ) -> None:
        """`mailer`: mail receipts to the council's receipts mailbox instead of posting them."""
        self.simulator, self.mailer = simulator, mailer
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(identity.cert, identity.key)
        self.mails = 0  # messages accepted
        self._server: asyncio.Server | None = None
        self.port: int | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen (0: any free port); returns the port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="localhost", tls_context=self.tls, require_starttls=True),
            host,
            port,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("partner_sim_smtp_started", partner=self.simulator.config.partner_id, port=port)
        return self.port

    async def stop(self) -> None:
        """Stop serving (and mailing receipts)."""
        if self.mailer is not None:
            await self.mailer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Take in each envelope attached; the SMTP answer is a hand-over, not a receipt."""
        decision = self.simulator.faults.next()
        if decision.fault is Fault.FAIL:
            return "451 4.3.0 Simulated outage: try again later"
        content = envelope.content
        message = parse_mail(content if isinstance(content, bytes) else str(content).encode())
        answered = Answered(
            str(message.get("To", "")),
            str(message.get("Subject", "")),
            str(message.get("Message-ID", "")),
        )
        try:
            for message_id, body in envelope_attachments(message):
                await self._take_in(body, message_id, decision.fault, answered)
        except CouncilJwksError:
            return "451 4.4.3 Cannot reach the council's keys: try again later"
        self.mails += 1
        return "250 2.0.0 Accepted"

    async def _take_in(
        self, body: bytes, message_id: str, fault: Fault, answered: Answered
    ) -> None:
        result = await self.simulator.take_in(body, message_id, fault)
        if result is None or result.receipt is None:
            return
        delay = self.simulator.config.receipt_delay_s
        if self.mailer is not None:
            self.mailer.send(answered, result.entry.message_id, result.receipt.token, delay)
            return
        poster = self.simulator.poster
        # Async mode posts from take_in itself; a mail has no reply to carry a sync receipt.
        if poster is not None and self.simulator.receipts is ReceiptMode.SYNC:
            poster.post(result.entry, result.receipt.token, delay_s=delay)
