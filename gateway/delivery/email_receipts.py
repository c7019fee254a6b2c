"""Replies in the council's receipts mailbox, taken by the receipt intake or as transport acks.

The poller (`adapters.imap_receipts.ImapReceiptMailbox`) hands each mail here; the answer says
where it goes:
- a partner's JOSE receipt goes to the same `ReceiptIntake` as `POST /v1/receipts`: `accepted`
  (recorded, or a replay of one that was) is archived; a receipt that is malformed, unknown,
  forged, or for another disclosure than the reply answers, is `refused` and quarantined
  (audited by the intake when its signature verifies against the partner's key);
- a signed MDN (RFC 8098) whose S/MIME signature verifies against the partner's registered
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

from adapters import mdn_signatures
from adapters.imap_receipts import MailedReply, MailVerdict
from adapters.mail_replies import (
    Disposition,
    MailReply,
    ReceiptReply,
    SignedMail,
    Unreadable,
    read_reply,
    read_signed_content,
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
    """The receipts mailbox poller's handler."""

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

    async def __call__(self, mail: MailedReply) -> MailVerdict:
        """Take one mail; raising is never needed: our own faults become `retry`."""
        verdict: MailVerdict
        reason: str | None
        try:
            if mail.too_large:
                verdict, reason = "refused", "mail_too_large"
            else:
                verdict, reason = await self._take(read_reply(mail.raw))
        except Exception as exc:  # the database, not the mail: look again next poll
            log.error("email_reply_retry", error_type=type(exc).__name__)
            verdict, reason = "retry", None
        self.metrics.channel_receipts.labels("email", verdict).inc()
        if verdict == "refused":
            self.metrics.mail_quarantined.labels(reason or "unknown").inc()
            log.warning("email_reply_quarantined", reason=reason)
        return verdict

    async def _take(self, reply: MailReply) -> tuple[MailVerdict, str | None]:
        if isinstance(reply, SignedMail):
            content = await mdn_signatures.signed_content(reply.raw)
            if content is None:
                return "refused", "mail_signature_unreadable"
            inner = read_signed_content(content, reply.answers)
            if isinstance(inner, Disposition):
                return await self._disposition(inner, reply.raw)
            reply = inner  # a receipt is a JWS: the intake checks its own signature
        if isinstance(reply, Unreadable):
            return "refused", reply.reason
        if isinstance(reply, Disposition):
            log.info("email_mdn_unsigned", disclosure_id=reply.disclosure_id)
            return "ignored", None
        if isinstance(reply, SignedMail):
            return "refused", "mail_malformed"  # a signed mail inside a signed mail
        return await self._receipt(reply)

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

    async def _disposition(self, mdn: Disposition, raw: bytes) -> tuple[MailVerdict, str | None]:
        async with self.store.read() as conn:
            disclosure = await disclosures.get(conn, mdn.disclosure_id)
        if disclosure is None:
            return "refused", "mdn_unmatched"
        certificates = await self.certificates(disclosure.partner_id)
        if not certificates:
            return "refused", "mdn_signer_unknown"
        verified = await mdn_signatures.verified_content(raw, certificates)
        # Believe only what the signature covers: the notification read again from it.
        if verified is None or read_signed_content(verified, frozenset()) != mdn:
            return "refused", "mdn_signature_invalid"
        kind = mdn.disposition.rpartition(";")[2].strip().lower()
        detail = {"via": "email", "disposition": kind if kind in DISPOSITION_TYPES else "other"}
        if await acknowledge_transport(self.store, disclosure.id, at=self.clock(), detail=detail):
            log.info("email_transport_acknowledged", disclosure_id=disclosure.id)
        return "acknowledged", None
