"""The secure email channel: the disclosure over SMTP with verified TLS, or as S/MIME.

Mail goes to the council's submission server (GATEWAY_SMTP_HOST), or with direct delivery
straight to the partner domain's mail servers (MX, MTA-STS respected: `email_direct`), with
STARTTLS required and the certificate verified: a server that does not offer STARTTLS, or whose
certificate does not verify, gets nothing (no fallback to plain text). The subject names the
disclosure id and nothing else (the agreement would reveal, say, a police request).

The channel is handed the council-signed JWT (`application/jwt`). Baseline: the message holds a
readable rendering of the permitted fields (text and HTML) and the signed JWT attached as
`<disclosure-id>.jwt`; receipts digest that attachment's bytes. For a partner with a
certificate (`target["smime_certificate"]`) the same entity is signed with the council's S/MIME
certificate and enveloped to the partner's; receipts digest the DER of that CMS. The worker has
the channel make that CMS once (`seal_for_partner`) and keeps it, so every attempt sends the
same CMS (`application/pkcs7-mime`). An envelope already sealed as a JWE (`application/jose`) is
attached as it is. SMTP's 250 is a hand-over to the mail system only: `dispatched`.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiosmtplib
import structlog

from adapters.email_direct import DirectDelivery, DirectDeliveryError
from adapters.email_message import Sender, build_message, smime_entity
from gateway.application.channel import (
    SIGNED_JWT,
    SMIME_CMS,
    DeliveryOutcome,
    DeliveryResult,
    Envelope,
)
from gateway.council_smime import CouncilSmime
from gateway.jose import b64url_digest

log = structlog.get_logger(__name__)

_ADDRESS = re.compile(r"^[^@\s<>,;]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$|^[^@\s<>,;]+@localhost$")


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
    max_message_bytes: int = 10 * 1024 * 1024
    smime: CouncilSmime | None = None  # the council's S/MIME signer; None: no S/MIME partners
    direct: bool = False  # to the partner's MX (MTA-STS respected), not through `host`
    direct_port: int = 25
    dns_servers: tuple[str, ...] = ()  # IP addresses; empty: the system's resolver
    dns_port: int = 53
    mta_sts_port: int = 443

    @property
    def sender(self) -> Sender:
        """The From address, the council's name, and where read notifications go."""
        return Sender(self.from_address, self.council, self.notify_address or self.from_address)


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
        self._direct: DirectDelivery | None = None

    def tls_context(self) -> ssl.SSLContext:
        """Verified TLS 1.2 or later, against the configured CA bundle or the system's."""
        if self._tls is None:
            context = ssl.create_default_context(cafile=self.options.ca_bundle)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            self._tls = context
        return self._tls

    def direct(self) -> DirectDelivery:
        """Direct delivery to partners' mail servers, its MTA-STS policies cached per process."""
        if self._direct is None:
            self._direct = DirectDelivery(
                tls=self.tls_context(),
                timeout=self.options.timeout,
                port=self.options.direct_port,
                nameservers=self.options.dns_servers,
                dns_port=self.options.dns_port,
                mta_sts_port=self.options.mta_sts_port,
            )
        return self._direct

    async def deliver(self, envelope: Envelope, target: Mapping[str, Any]) -> DeliveryResult:
        """Send the envelope once; every mail or network fault comes back as a result."""
        address = target.get("address")
        if not isinstance(address, str) or not _ADDRESS.match(address):
            return _result(DeliveryOutcome.PERMANENT, "channel_misconfigured", setting="address")
        context = {"disclosure_id": envelope.message_id, "partner": envelope.partner_id}
        # A CMS made before goes as it is; only a signed JWT may still need sealing here.
        sealing = envelope.content_type != SMIME_CMS
        smime = self._smime(target, datetime.now(UTC)) if sealing else None
        if isinstance(smime, DeliveryResult):
            log.error("smtp_smime_unavailable", reason=smime.reason, **context)
            return smime
        try:
            # In a thread: S/MIME signing costs milliseconds the loop can spend on other sends.
            mail = await asyncio.to_thread(
                build_message, envelope, address, self.options.sender, smime=smime
            )
        except (ValueError, TypeError, UnicodeError) as exc:  # not our signed JWT: never retried
            log.error("smtp_message_unbuildable", error_type=type(exc).__name__, **context)
            return _result(DeliveryOutcome.PERMANENT, "envelope_malformed")
        size = len(mail.data)
        if size > self.options.max_message_bytes:
            log.error("smtp_message_too_large", size=size, **context)
            return _result(DeliveryOutcome.PERMANENT, "smtp_message_too_large", size=size)
        delivered: dict[str, str] = {}
        try:
            async with self._slots:
                if self.options.direct:
                    sent = await self.direct().send(mail.data, self.options.from_address, address)
                    delivered = {"mx": sent.mx, "mta_sts": sent.mta_sts}
                else:
                    await self._submit(mail.data, address)
        except DirectDeliveryError as exc:
            log.warning(
                "smtp_delivery_failed", outcome=str(exc.outcome), reason=exc.code, **context
            )
            return _result(exc.outcome, exc.code)
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
        sealed = smime is not None or envelope.content_type == SMIME_CMS
        form = "smime" if sealed else "tls"
        log.info("smtp_dispatched", form=form, size=size, **delivered, **context)
        detail: dict[str, Any] = {"smtp_message_id": mail.message_id, "form": form, **delivered}
        if sealed:
            detail.update(digest=mail.digest, smime_cert=target.get("smime_fingerprint", ""))
        return _result(DeliveryOutcome.DISPATCHED, None, **detail)

    async def _submit(self, data: bytes, address: str) -> None:
        """Through the council's submission server, STARTTLS required and verified."""
        await aiosmtplib.send(
            data,
            sender=self.options.from_address,
            recipients=[address],
            hostname=self.options.host,
            port=self.options.port,
            username=self.options.username,
            password=self.options.password,
            start_tls=True,  # required: no STARTTLS, no send
            validate_certs=True,
            tls_context=self.tls_context(),
            timeout=self.options.timeout,
        )

    async def seal_for_partner(
        self, envelope: Envelope, target: Mapping[str, Any], at: datetime
    ) -> Envelope | DeliveryResult | None:
        """The S/MIME CMS of a signed JWT for the partner's certificate in `target`, made once
        by the worker's request and then sent as it is; None for a TLS-only partner."""
        if envelope.content_type != SIGNED_JWT:
            return None
        smime = self._smime(target, at)
        if isinstance(smime, DeliveryResult):
            log.error(
                "smtp_smime_unavailable",
                reason=smime.reason,
                disclosure_id=envelope.message_id,
                partner=envelope.partner_id,
            )
        if smime is None or isinstance(smime, DeliveryResult):
            return smime
        try:
            # In a thread: signing and enveloping cost milliseconds the loop can spend elsewhere.
            der = await asyncio.to_thread(smime_entity, envelope, self.options.sender, smime)
        except (ValueError, TypeError, UnicodeError) as exc:  # not our signed JWT: never retried
            log.error(
                "smtp_message_unbuildable",
                error_type=type(exc).__name__,
                disclosure_id=envelope.message_id,
                partner=envelope.partner_id,
            )
            return _result(DeliveryOutcome.PERMANENT, "envelope_malformed")
        return Envelope(
            envelope.message_id,
            envelope.partner_id,
            der,
            b64url_digest(der),
            envelope.attempt,
            SMIME_CMS,
        )

    def signer(self, at: datetime) -> str | None:
        """The council S/MIME certificate seals are signed with, if one is valid at `at`."""
        smime = self.options.smime
        return smime.fingerprint if smime is not None and smime.valid_at(at) else None

    def _smime(
        self, target: Mapping[str, Any], at: datetime
    ) -> tuple[CouncilSmime, str] | DeliveryResult | None:
        """The signer and the partner's certificate, None for the baseline, or why neither."""
        certificate = target.get("smime_certificate")
        if certificate is None:
            return None
        # Ours to fix: retried until a (valid) council certificate is installed; a message
        # signed with an expired one would be refused by the partner's mail client.
        if self.options.smime is None:
            return _result(DeliveryOutcome.TRANSIENT, "council_smime_missing")
        if not self.options.smime.valid_at(at):
            return _result(DeliveryOutcome.TRANSIENT, "council_smime_expired")
        return self.options.smime, str(certificate)

    async def close(self) -> None:
        """Nothing pooled: each send has its own SMTP session."""
