"""A mail from the receipts mailbox made into the application's `InboundMail`.

The mail is parsed (`mail_replies`); a signed one is opened to see whose it claims to be, and
an MDN inside is believed only when its signature verifies against one of the certificates
the handler names for that disclosure and the notification read again from the signed
content is the same (`mdn_signatures`). A receipt inside a signed mail is passed on whoever
signed the mail: it is a JWS the receipt intake verifies on its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from adapters import mdn_signatures
from adapters.mail_replies import SignedMail, read_reply, read_signed_content
from gateway.application.inbound import Disposition, InboundMail, MailDeferred, RefusedMail

Signers = Callable[[str], Awaitable[Sequence[bytes] | None]]
"""Who may sign an MDN about a disclosure (PEM certificates); None: no such disclosure."""


async def read_mail(raw: bytes, signers: Signers) -> InboundMail:
    """What the mail holds, its MDN signature checked; our own faults make it `MailDeferred`."""
    try:
        return await _read(raw, signers)
    except Exception as exc:  # the database or OpenSSL, not the mail: look again next poll
        return MailDeferred(type(exc).__name__)


async def _read(raw: bytes, signers: Signers) -> InboundMail:
    reply = read_reply(raw)
    if not isinstance(reply, SignedMail):
        return reply
    content = await mdn_signatures.signed_content(reply.raw)
    if content is None:
        return RefusedMail("mail_signature_unreadable")
    inner = read_signed_content(content, reply.answers)
    if isinstance(inner, Disposition):
        return await _verified(inner, reply.raw, signers)
    if isinstance(inner, SignedMail):
        return RefusedMail("mail_malformed")  # a signed mail inside a signed mail
    return inner


async def _verified(mdn: Disposition, raw: bytes, signers: Signers) -> InboundMail:
    certificates = await signers(mdn.disclosure_id)
    if certificates is None:
        return RefusedMail("mdn_unmatched")
    if not certificates:
        return RefusedMail("mdn_signer_unknown")
    verified = await mdn_signatures.verified_content(raw, certificates)
    # Believe only what the signature covers: the notification read again from it.
    if verified is None or read_signed_content(verified, frozenset()) != mdn:
        return RefusedMail("mdn_signature_invalid")
    return replace(mdn, verified=True)
