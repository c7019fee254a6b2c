"""What a mail in the council's receipts mailbox holds: a partner's JOSE receipt, or an MDN.

A receipt comes as the one attachment of a reply (`application/jose`, `application/jwt`, or a
file named `*.jwt`); the disclosure ids the reply says it answers (its Subject, In-Reply-To and
References, as the email channel wrote them) are kept so a receipt for another disclosure can be
told apart. A message disposition notification (RFC 8098: `multipart/report;
report-type=disposition-notification`) names the Message-ID we sent in `Original-Message-ID`;
one wrapped in S/MIME signing is handed on whole, so its signature can be checked before any of
it is believed. These functions only read bytes: nothing here trusts what it reads.
"""

from __future__ import annotations

import email
import email.errors
import email.policy
import re
from dataclasses import dataclass
from email.message import EmailMessage, Message

from gateway.application.inbound import Disposition, ReceiptReply, RefusedMail

RECEIPT_TYPES = frozenset({"application/jose", "application/jwt"})
SIGNED_TYPES = frozenset({"multipart/signed", "application/pkcs7-mime", "application/x-pkcs7-mime"})
# The email channel's Message-ID: <disclosure-id.attempt@domain>; ids are UUIDs.
_SENT_ID = re.compile(r"<([0-9a-fA-F-]{36})\.\d+@[^>\s]+>")
_DISCLOSURE_ID = re.compile(r"\b([0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})\b")


@dataclass(frozen=True, slots=True)
class SignedMail:
    """An S/MIME signed mail: believed only once its signature verifies (`raw` is all of it)."""

    raw: bytes
    answers: frozenset[str]


MailReply = ReceiptReply | SignedMail | Disposition | RefusedMail


def parse(raw: bytes) -> EmailMessage:
    """The mail as a message object (the modern policy, so parts decode themselves)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def answered(message: Message) -> frozenset[str]:
    """The disclosure ids a reply's Subject, In-Reply-To and References name."""
    ids = set(_DISCLOSURE_ID.findall(str(message.get("Subject", ""))))
    for header in ("In-Reply-To", "References"):
        ids.update(_SENT_ID.findall(str(message.get(header, ""))))
    return frozenset(identifier.lower() for identifier in ids)


def read_reply(raw: bytes) -> MailReply:
    """Classify one mail from the receipts mailbox."""
    try:
        message = parse(raw)
        answers = answered(message)
        if message.get_content_type() in SIGNED_TYPES:
            return SignedMail(raw, answers)
        return read_content(message, answers)
    except (ValueError, LookupError, TypeError, AttributeError, email.errors.MessageError):
        return RefusedMail("mail_malformed")  # a parser fault on hostile bytes: not a receipt


def read_signed_content(content: bytes, answers: frozenset[str]) -> MailReply:
    """What the content of a signed mail holds (the mail's own headers gave `answers`)."""
    try:
        return read_content(parse(content), answers)
    except (ValueError, LookupError, TypeError, AttributeError, email.errors.MessageError):
        return RefusedMail("mail_malformed")


def read_content(message: EmailMessage, answers: frozenset[str]) -> MailReply:
    """A receipt or an MDN in an (unsigned, or already verified) message."""
    if _is_report(message):
        return read_disposition(message)
    tokens = [
        part.get_content()
        for part in message.walk()
        if not part.is_multipart() and _is_receipt(part)
    ]
    if not tokens:
        return RefusedMail("mail_no_receipt")
    if len(tokens) > 1:
        return RefusedMail("mail_several_receipts")
    token = tokens[0]
    data = token.encode("ascii", "replace") if isinstance(token, str) else bytes(token)
    return ReceiptReply(data.strip(), answers)


def read_disposition(message: EmailMessage) -> MailReply:
    """The `message/disposition-notification` part of an RFC 8098 report."""
    for part in message.walk():
        if part.get_content_type() != "message/disposition-notification":
            continue
        fields = _notification_fields(part)
        found = _SENT_ID.search(fields.get("original-message-id", ""))
        if found is None:
            return RefusedMail("mdn_unmatched")
        return Disposition(found.group(1).lower(), fields.get("disposition", "").strip()[:200])
    return RefusedMail("mail_malformed")


def _is_report(message: Message) -> bool:
    return (
        message.get_content_type() == "multipart/report"
        and message.get_param("report-type") == "disposition-notification"
    )


def _is_receipt(part: Message) -> bool:
    filename = part.get_filename() or ""
    return part.get_content_type() in RECEIPT_TYPES or filename.lower().endswith(".jwt")


def _notification_fields(part: Message) -> dict[str, str]:
    """`Name: value` lines of the notification body (RFC 8098 s3.1), names lowercased."""
    fields: dict[str, str] = {}
    payload = part.get_payload()
    if isinstance(payload, list):  # the parser reads it as blocks of header fields
        for block in payload:
            if not isinstance(block, Message):
                continue
            for name, value in block.items():
                fields.setdefault(name.lower(), " ".join(str(value).split()))
        return fields
    body = part.get_payload(decode=True)
    text = body.decode("ascii", "replace") if isinstance(body, bytes) else str(payload)
    for line in text.splitlines():
        name, colon, value = line.partition(":")
        if colon and name.strip():
            fields.setdefault(name.strip().lower(), value.strip())
    return fields
