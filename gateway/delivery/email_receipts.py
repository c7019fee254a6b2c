"""Replies in the council's receipts mailbox, taken by the receipt intake or as transport acks.

The poller (`adapters.imap_receipts.ImapReceiptMailbox`) reads each mail, checks the signature
of a signed MDN against the certificates `signers` names, and hands the result here; the answer
says where the mail goes:
- a partner's JOSE receipt goes to the same `ReceiptIntake` as `POST /v1/receipts`: `accepted`
  (recorded, or a replay of one that was) is archived; a receipt that is malformed, unknown,
  forged, or for another disclosure than the reply answers, is `refused` and quarantined
  (audited by the intake when its signature verifies against the partner's key);
- a signed MDN (RFC 8098) whose S/MIME signature verified against the partner's registered
  certificate is recorded as `transport_acknowledged` (the status stays `dispatched`: a mail
  client displaying the message is not the partner's system taking it) and archived; an
  unsigned MDN proves nothing and is archived unrecorded (`ignored`);
- anything else is quarantined; our own faults (the database) are `retry`: left for next poll.
Every quarantined mail is counted by reason and logged once, without its sender or contents.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import structlog

from gateway.application.inbound import (
    Disposition,
    InboundMail,
    MailDeferred,
    MailVerdict,
    ReceiptReply,
    RefusedMail,
)
from gateway.application.receipt_intake import ReceiptIntake, claimed_message_id
from gateway.delivery.deadlines import acknowledge_transport
from gateway.errors import NotFoundError
from gateway.metrics import Metrics
from gateway.receipts import ReceiptError
from gateway.store import disclosures
from gateway.store.database import Store

log = structlog.get_logger("gateway.delivery.email")

PartnerCertificates = Callable[[str], Awaitable[Sequence[bytes]]]
"""A partner's registered S/MIME certificates (PEM), in force now, which may sign its MDNs."""

DISPOSITION_TYPES = frozenset({"displayed", "deleted", "dispatched", "processed"})


async def no_certificates(partner_id: str) -> Sequence[bytes]:
    """No partner has a registered S/MIME certificate: every signed MDN is quarantined."""
    return ()


class EmailReceipts:
    """The receipts mailbox poller's `MailHandler`."""

    def __init__(
        self,
        *,
        store: Store,
        intake: ReceiptIntake,
        metrics: Metrics,
        clock: Callable[[], datetime],
        certificates: PartnerCertificates = no_certificates,
    ) -> None:
        self.store, self.intake, self.metrics, self.clock = store, intake, metrics, clock
        self.certificates = certificates

    async def __call__(self, mail: InboundMail) -> MailVerdict:
        """Take one mail; raising is never needed: our own faults become `retry`."""
        verdict: MailVerdict
        reason: str | None
        try:
            verdict, reason = await self._take(mail)
        except Exception as exc:  # the database, not the mail: look again next poll
            verdict, reason = _retry(type(exc).__name__)
        self.metrics.channel_receipts.labels("email", verdict).inc()
        if verdict == "refused":
            self.metrics.mail_quarantined.labels(reason or "unknown").inc()
            log.warning("email_reply_quarantined", reason=reason)
        return verdict

    async def signers(self, disclosure_id: str) -> Sequence[bytes] | None:
        """The certificates of the disclosure's partner that may sign its MDNs; None when there
        is no such disclosure."""
        async with self.store.read() as conn:
            disclosure = await disclosures.get(conn, disclosure_id)
        if disclosure is None:
            return None
        return await self.certificates(disclosure.partner_id)

    def unreachable(self, reason: str) -> None:
        """The mailbox could not be read this time: counted and logged, nothing moved."""
        self.metrics.mailbox_poll_failures.labels(reason).inc()
        log.warning("email_receipts_poll_failed", reason=reason)

    async def _take(self, mail: InboundMail) -> tuple[MailVerdict, str | None]:
        if isinstance(mail, MailDeferred):
            return _retry(mail.error_type)
        if isinstance(mail, RefusedMail):
            return "refused", mail.reason
        if isinstance(mail, Disposition):
            return await self._disposition(mail)
        return await self._receipt(mail)

    async def _receipt(self, reply: ReceiptReply) -> tuple[MailVerdict, str | None]:
        try:
            message_id = claimed_message_id(reply.token)
            if reply.answers and message_id.lower() not in reply.answers:
                return "refused", "mail_receipt_mismatch"
            await self.intake.accept(reply.token, via="email")
        except NotFoundError:
            return "refused", "receipt_unknown_message"
        except ReceiptError as exc:  # refused (and audited) by the intake
            return "refused", exc.code
        return "accepted", None

    async def _disposition(self, mdn: Disposition) -> tuple[MailVerdict, str | None]:
        if not mdn.verified:
            log.info("email_mdn_unsigned", disclosure_id=mdn.disclosure_id)
            return "ignored", None
        kind = mdn.disposition.rpartition(";")[2].strip().lower()
        detail = {"via": "email", "disposition": kind if kind in DISPOSITION_TYPES else "other"}
        if await acknowledge_transport(
            self.store, mdn.disclosure_id, at=self.clock(), detail=detail
        ):
            log.info("email_transport_acknowledged", disclosure_id=mdn.disclosure_id)
        return "acknowledged", None


def _retry(error_type: str) -> tuple[MailVerdict, str | None]:
    """Our side failed (the database, OpenSSL): the mail stays for the next poll."""
    log.error("email_reply_retry", error_type=error_type)
    return "retry", None
