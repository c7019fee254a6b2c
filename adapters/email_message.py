"""The bytes of one disclosure email: headers, the readable parts, the attachment, S/MIME.

Built with the standard library's MIME classes under the compat32 policy with CRLF line ends,
the wire form itself: the modern `EmailMessage` API parses every header it is given, several
times the cost of the send on loopback. Text parts are quoted-printable, so they stay readable
in the raw message (and a test can tell that S/MIME hides them).
"""

from __future__ import annotations

import email.policy
from dataclasses import dataclass
from email.charset import QP, Charset
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import formatdate

from adapters.email_rendering import claims_of, is_notice, render, render_notice
from adapters.email_smime import FILE_NAME, SMIME_TYPE, sign_and_envelope
from gateway.application.channel import SIGNED_JWT, SMIME_CMS, Envelope
from gateway.council_smime import CouncilSmime
from gateway.jose import b64url_digest

WIRE = email.policy.compat32.clone(linesep="\r\n")
_UTF8 = Charset("utf-8")
_UTF8.body_encoding = QP
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
class Sender:
    """Who the message is from, and where read notifications go."""

    address: str
    council: str
    notify_address: str


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    """The wire bytes of one message, its Message-ID, and the digest a receipt must carry."""

    data: bytes
    message_id: str
    digest: str


def _part(part: MIMEBase) -> MIMEBase:
    del part["MIME-Version"]  # only the top-level message carries it
    return part


def _attachment(body: bytes, subtype: str, file: str) -> MIMEBase:
    part = MIMEApplication(body, subtype)
    part.add_header("Content-Disposition", "attachment", filename=file)
    return _part(part)


def _text(body: str, subtype: str) -> MIMEBase:
    part = MIMENonMultipart("text", subtype)
    part.set_payload(body, _UTF8)
    return _part(part)


def _alternative(text: str, page: str) -> MIMEMultipart:
    return MIMEMultipart(
        "alternative",
        _subparts=[_text(text, "plain"), _text(page, "html")],
    )


def readable_entity(envelope: Envelope, council: str) -> MIMEMultipart:
    """The rendering of the signed JWT's fields (text and HTML), with the JWT attached: a
    disclosure, or an Article 19 notice."""
    file = f"{envelope.message_id}.jwt"
    claims = claims_of(envelope.body)
    how = render_notice if is_notice(claims) else render
    rendering = how(claims, council=council, attachment=file)
    return MIMEMultipart(
        "mixed",
        _subparts=[
            _part(_alternative(rendering.text, rendering.html)),
            _attachment(envelope.body, "jwt", file),
        ],
    )


def _sealed_entity(envelope: Envelope, council: str) -> MIMEMultipart:
    """An envelope sealed as a JWE before the channel carried the signed JWT: attached as is."""
    file = f"{envelope.message_id}.jwe"
    facts = {"council": council, "file": file, "message_id": envelope.message_id}
    subtype = envelope.content_type.partition("/")[2] or "jose"
    return MIMEMultipart(
        "mixed",
        _subparts=[
            _part(_alternative(_TEXT.format(**facts), _HTML.format(**facts))),
            _attachment(envelope.body, subtype, file),
        ],
    )


def smime_entity(envelope: Envelope, sender: Sender, smime: tuple[CouncilSmime, str]) -> bytes:
    """The DER CMS of the readable entity, signed by the council and enveloped to the partner's
    certificate (`smime`: the council's signer and the partner's certificate, PEM)."""
    entity = readable_entity(envelope, sender.council)
    return sign_and_envelope(entity.as_bytes(policy=WIRE), *smime)


def _smime_message(der: bytes) -> MIMEBase:
    message = MIMEApplication(der, "pkcs7-mime")
    message.set_param("smime-type", SMIME_TYPE)
    message.set_param("name", FILE_NAME)
    message.add_header("Content-Disposition", "attachment", filename=FILE_NAME)
    return message


def build_message(
    envelope: Envelope,
    address: str,
    sender: Sender,
    *,
    smime: tuple[CouncilSmime, str] | None = None,
) -> OutgoingMail:
    """The message for one envelope: an S/MIME CMS made before (`SMIME_CMS`) goes as it is;
    a signed JWT is rendered, and signed and enveloped here when `smime` is given."""
    digest = envelope.digest
    message: MIMEBase
    if envelope.content_type == SMIME_CMS:
        message = _smime_message(envelope.body)
        digest = b64url_digest(envelope.body)
    elif envelope.content_type != SIGNED_JWT:
        message = _sealed_entity(envelope, sender.council)
    elif smime is None:
        message = readable_entity(envelope, sender.council)
    else:
        der = smime_entity(envelope, sender, smime)
        message = _smime_message(der)
        digest = b64url_digest(der)
    domain = sender.address.rpartition("@")[2]
    # One id per disclosure and attempt: a resend is a new message to the mail system.
    message_id = f"<{envelope.message_id}.{envelope.attempt}@{domain}>"
    message["From"] = sender.address
    message["To"] = address
    message["Subject"] = envelope.message_id
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id
    message["Disposition-Notification-To"] = sender.notify_address
    message["X-Gatehouse-Message-Id"] = envelope.message_id
    return OutgoingMail(message.as_bytes(policy=WIRE), message_id, digest)
