"""Mailed receipts: the simulated email partner replies to the council's receipts mailbox.

The reply answers the council's mail (`Re:` its subject, `In-Reply-To` its Message-ID) and
carries the signed receipt as its one attachment, `<id>.receipt.jwt` (`application/jose`). It
goes through the SMTP server given (the council's inbound mail server) with STARTTLS required
and the server's certificate verified, as the council's own channel sends. One attempt per
receipt: a failure is logged, and the council's receipt deadline resends the disclosure.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import aiosmtplib
import structlog

log = structlog.get_logger("gateway.partner_sim")


@dataclass(frozen=True, slots=True)
class ReplyRoute:
    """Where mailed receipts go: the council's receipts address, through this SMTP server."""

    address: str
    host: str
    port: int
    ca_bundle: Path | None = None  # None: the system's trusted CAs
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class Answered:
    """The council's mail a receipt answers: who it was to, its subject and Message-ID."""

    to: str
    subject: str
    message_id: str


def receipt_reply(
    answered: Answered, route: ReplyRoute, disclosure_id: str, token: bytes
) -> EmailMessage:
    """The reply carrying one signed receipt."""
    reply = EmailMessage()
    reply["From"] = answered.to or "partner-sim@localhost"
    reply["To"] = route.address
    reply["Subject"] = f"Re: {answered.subject}"
    reply["Date"] = formatdate(localtime=False)
    reply["Message-ID"] = make_msgid(domain="partner-sim.localhost")
    if answered.message_id:
        reply["In-Reply-To"] = answered.message_id
        reply["References"] = answered.message_id
    reply.set_content(f"Signed receipt for disclosure {disclosure_id} attached.\n")
    reply.add_attachment(
        token, maintype="application", subtype="jose", filename=f"{disclosure_id}.receipt.jwt"
    )
    return reply


class ReceiptMailer:
    """Background sends, one per receipt; `close` stops those still under way."""

    def __init__(self, route: ReplyRoute) -> None:
        self.route = route
        self.sent = 0
        self._tls = ssl.create_default_context(
            cafile=str(route.ca_bundle) if route.ca_bundle else None
        )
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, answered: Answered, disclosure_id: str, token: bytes, delay_s: float) -> None:
        """Mail this receipt in the background, after `delay_s` seconds."""
        reply = receipt_reply(answered, self.route, disclosure_id, token)
        task = asyncio.create_task(self._send(reply, disclosure_id, delay_s))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for every send under way."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop sending (on shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _send(self, reply: EmailMessage, disclosure_id: str, delay_s: float) -> None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        try:
            await aiosmtplib.send(
                reply,
                hostname=self.route.host,
                port=self.route.port,
                start_tls=True,
                validate_certs=True,
                tls_context=self._tls,
                timeout=self.route.timeout,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            log.warning(
                "receipt_mail_failed", message_id=disclosure_id, error_type=type(exc).__name__
            )
            return
        self.sent += 1
