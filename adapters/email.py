"""The secure email channel: the sealed envelope as an attachment, over SMTP with verified TLS.

Mail goes to the council's submission server (GATEWAY_SMTP_HOST) with STARTTLS required and its
certificate verified: a server that does not offer STARTTLS, or whose certificate does not
verify, gets nothing (no fallback to plain text). The message names the disclosure id in its
subject and nothing else about it (the agreement would reveal, say, a police request); the body
tells the reader how to open the attachment; the attachment `<disclosure-id>.jwe` is the same
envelope the other channels send, sealed to the partner's key, so receipts digest its bytes.
SMTP's 250 is a hand-over to the mail system only: the disclosure is `dispatched`, and
`receipted` when the partner's signed receipt reaches `POST /v1/receipts`.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import aiosmtplib
import structlog

from gateway.application.channel import DeliveryOutcome, DeliveryResult, Envelope

log = structlog.get_logger(__name__)

_ADDRESS = re.compile(r"^[^@\s<>,;]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$|^[^@\s<>,;]+@localhost$")
_TEXT = """A disclosure from {council} is attached as {file}.

It is sealed for your organisation: open it with your Gatehouse decryption key (a standard
JWE; the signed JWT inside verifies with {council}'s published keys). Then send the signed
receipt for message {message_id} to {council}'s receipts endpoint.

Disclosure id: {message_id}
"""
_HTML = """<html><body>
<p>A disclosure from {council} is attached as <code>{file}</code>.</p>
<p>It is sealed for your organisation: open it with your Gatehouse decryption key (a standard
JWE; the signed JWT inside verifies with {council}'s published keys). Then send the signed
receipt for message <code>{message_id}</code> to {council}'s receipts endpoint.</p>
<p>Disclosure id: <code>{message_id}</code></p>
</body></html>
"""


@dataclass(frozen=True, slots=True)
class SmtpOptions:
    """The council's mail submission settings (GATEWAY_SMTP_*), never from the catalog."""

    host: str
    from_address: str
    council: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    ca_bundle: str | None = None  # None: the system's trusted CAs
    timeout: float = 30.0
    sends_at_once: int = 4
    notify_address: str | None = None  # Disposition-Notification-To; None: from_address


def build_message(envelope: Envelope, address: str, options: SmtpOptions) -> EmailMessage:
    """The message for one envelope: subject = disclosure id, the envelope attached."""
    file = f"{envelope.message_id}.jwe"
    facts = {"council": options.council, "file": file, "message_id": envelope.message_id}
    domain = options.from_address.rpartition("@")[2]
    message = EmailMessage()
    message["From"] = options.from_address
    message["To"] = address
    message["Subject"] = envelope.message_id
    message["Date"] = formatdate(localtime=False)
    # One id per disclosure and attempt: a resend is a new message to the mail system.
    message["Message-ID"] = f"<{envelope.message_id}.{envelope.attempt}@{domain}>"
    message["Disposition-Notification-To"] = options.notify_address or options.from_address
    message["X-Gatehouse-Message-Id"] = envelope.message_id
    message.set_content(_TEXT.format(**facts))
    message.add_alternative(_HTML.format(**facts), subtype="html")
    maintype, _, subtype = envelope.content_type.partition("/")
    message.add_attachment(envelope.body, maintype=maintype, subtype=subtype, filename=file)
    return message


def _result(outcome: DeliveryOutcome, reason: str | None = None, **detail: Any) -> DeliveryResult:
    return DeliveryResult(outcome=outcome, reason=reason, detail=detail)


def classify(exc: BaseException) -> tuple[DeliveryOutcome, str]:
    """The outcome and stable reason for an SMTP fault (pure, so easy to test)."""
    transient, permanent = DeliveryOutcome.TRANSIENT, DeliveryOutcome.PERMANENT
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [error.code for error in exc.recipients]
        if codes and all(400 <= code < 500 for code in codes):
            return transient, "smtp_deferred"
        return permanent, "smtp_recipient_refused"
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return permanent, "smtp_auth_failed"
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return transient, "partner_timeout"
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return (transient, "smtp_deferred") if exc.code < 500 else (permanent, "smtp_refused")
    if isinstance(exc, ssl.SSLError) or isinstance(exc.__cause__, ssl.SSLError):
        return transient, "smtp_tls_failed"
    if isinstance(exc, aiosmtplib.SMTPException) and "STARTTLS" in str(exc):
        return transient, "smtp_tls_unavailable"
    return transient, "partner_unreachable"


class EmailChannel:
    """Deliver envelopes by email; implements the application's `Channel`."""

    def __init__(self, options: SmtpOptions) -> None:
        self.options = options
        self._slots = asyncio.Semaphore(options.sends_at_once)
        self._tls: ssl.SSLContext | None = None

    def tls_context(self) -> ssl.SSLContext:
        """Verified TLS 1.2 or later, against the configured CA bundle or the system's."""
        if self._tls is None:
            context = ssl.create_default_context(cafile=self.options.ca_bundle)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            self._tls = context
        return self._tls

    async def deliver(self, envelope: Envelope, target: Mapping[str, Any]) -> DeliveryResult:
        """Send the envelope once; every mail or network fault comes back as a result."""
        address = target.get("address")
        if not isinstance(address, str) or not _ADDRESS.match(address):
            return _result(DeliveryOutcome.PERMANENT, "channel_misconfigured", setting="address")
        context = {"disclosure_id": envelope.message_id, "partner": envelope.partner_id}
        try:
            message = build_message(envelope, address, self.options)
            async with self._slots:
                await aiosmtplib.send(
                    message,
                    hostname=self.options.host,
                    port=self.options.port,
                    username=self.options.username,
                    password=self.options.password,
                    start_tls=True,  # required: no STARTTLS, no send
                    validate_certs=True,
                    tls_context=self.tls_context(),
                    timeout=self.options.timeout,
                )
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError, TimeoutError) as exc:
            outcome, reason = classify(exc)
            event = "smtp_tls_refused" if reason.startswith("smtp_tls") else "smtp_delivery_failed"
            log.warning(
                event,
                outcome=str(outcome),
                reason=reason,
                error_type=type(exc).__name__,
                **context,
            )
            return _result(outcome, reason, error_type=type(exc).__name__)
        log.info("smtp_dispatched", **context)
        return _result(DeliveryOutcome.DISPATCHED, None, smtp_message_id=message["Message-ID"])

    async def close(self) -> None:
        """Nothing pooled: each send has its own SMTP session."""
