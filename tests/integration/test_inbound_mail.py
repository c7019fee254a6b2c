"""A mail from the receipts mailbox made into the application's `InboundMail`, with the real
OpenSSL CLI checking MDN signatures; and what the handler makes of one it could not read."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any, cast

from cryptography.hazmat.primitives import serialization

from adapters.inbound_mail import read_mail
from gateway.application.inbound import Disposition, MailDeferred, RefusedMail
from gateway.clock import utc_now
from gateway.delivery.email_receipts import EmailReceipts
from gateway.metrics import Metrics
from tests.integration.test_email_receipts import _mdn, _signed, _smime_identity

DISCLOSURE = str(uuid.uuid4())
PROBATION = _smime_identity("probation-kss mail")
PEM = PROBATION[1].public_bytes(serialization.Encoding.PEM)


def _sent() -> EmailMessage:
    sent = EmailMessage()
    sent["Message-ID"] = f"<{DISCLOSURE}.1@medway-council.example>"
    return sent


def _signers_of(found: Sequence[bytes] | None) -> Any:
    async def signers(disclosure_id: str) -> Sequence[bytes] | None:
        assert disclosure_id == DISCLOSURE
        return found

    return signers


async def test_a_signed_mdn_is_believed_only_with_a_registered_signer() -> None:
    mdn = _signed(_mdn(_sent()), PROBATION)
    shown = "manual-action/MDN-sent-manually; displayed"
    assert await read_mail(mdn, _signers_of([PEM])) == Disposition(DISCLOSURE, shown, True)
    assert await read_mail(mdn, _signers_of(None)) == RefusedMail("mdn_unmatched")
    assert await read_mail(mdn, _signers_of([])) == RefusedMail("mdn_signer_unknown")
    other = _smime_identity("someone else")[1].public_bytes(serialization.Encoding.PEM)
    assert await read_mail(mdn, _signers_of([other])) == RefusedMail("mdn_signature_invalid")
    unsigned = _mdn(_sent()).as_bytes()
    assert await read_mail(unsigned, _signers_of([PEM])) == Disposition(DISCLOSURE, shown)


async def test_a_signed_mail_openssl_cannot_read_is_refused() -> None:
    junk = (
        b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; '
        b'micalg=sha-256; boundary="b"\r\n\r\n--b\r\nnot signed\r\n--b--\r\n'
    )
    assert await read_mail(junk, _signers_of([PEM])) == RefusedMail("mail_signature_unreadable")


async def test_our_own_fault_while_reading_leaves_the_mail_for_the_next_poll() -> None:
    async def database_away(disclosure_id: str) -> Sequence[bytes] | None:
        raise ConnectionRefusedError

    mail = await read_mail(_signed(_mdn(_sent()), PROBATION), database_away)
    assert mail == MailDeferred("ConnectionRefusedError")
    metrics = Metrics()
    handler = EmailReceipts(
        store=cast(Any, None), intake=cast(Any, None), metrics=metrics, clock=utc_now
    )
    assert await handler(mail) == "retry"
    rendered = metrics.render().decode()
    assert 'gatehouse_channel_receipt_files_total{channel="email",verdict="retry"} 1.0' in rendered
