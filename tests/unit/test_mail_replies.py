"""Reading replies from the receipts mailbox: receipts, MDNs, and what is neither."""

from __future__ import annotations

from email.message import EmailMessage

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.mail_replies import SignedMail, read_reply
from gateway.application.inbound import Disposition, ReceiptReply, RefusedMail

SENT = "01a2420f-f967-7200-bc8d-d5237989fd4a"
OTHER = "01a2420f-0000-7000-8000-000000000001"
TOKEN = b"eyJhbGciOiJFUzI1NiJ9.eyJtZXNzYWdlX2lkIjoiMSJ9.c2ln"


def _reply(*attachments: tuple[bytes, str, str], subject: str = f"Re: {SENT}") -> bytes:
    mail = EmailMessage()
    mail["Subject"] = subject
    mail["In-Reply-To"] = f"<{OTHER}.2@medway-council.example>"
    mail.set_content("Receipt attached.\n")
    for body, subtype, name in attachments:
        mail.add_attachment(body, maintype="application", subtype=subtype, filename=name)
    return mail.as_bytes()


def test_the_one_receipt_attached_and_the_disclosures_the_reply_answers() -> None:
    reply = read_reply(_reply((TOKEN + b"\n", "jose", "receipt.jwt")))
    assert reply == ReceiptReply(TOKEN, frozenset({SENT, OTHER}))


def test_a_jwt_file_of_another_type_is_a_receipt_too() -> None:
    reply = read_reply(_reply((TOKEN, "octet-stream", f"{SENT}.receipt.jwt"), subject="x"))
    assert isinstance(reply, ReceiptReply)
    assert reply.token == TOKEN
    assert reply.answers == {OTHER}


def test_no_receipt_or_several_is_unreadable() -> None:
    assert read_reply(_reply((b"%PDF-1.7", "pdf", "letter.pdf"))) == RefusedMail("mail_no_receipt")
    both = _reply((TOKEN, "jose", "a.jwt"), (TOKEN, "jwt", "b.jwt"))
    assert read_reply(both) == RefusedMail("mail_several_receipts")


def _mdn(original: str) -> EmailMessage:
    report = EmailMessage()
    report.set_content("Displayed.\n")
    report.make_mixed()
    notification = EmailMessage()
    notification.set_payload(
        "Reporting-UA: mail.example\r\n"
        "Final-Recipient: rfc822; someone@partner.example\r\n"
        f"Original-Message-ID: {original}\r\n"
        "Disposition: automatic-action/MDN-sent-automatically; displayed\r\n"
    )
    notification["Content-Type"] = "message/disposition-notification"
    report.attach(notification)
    report.replace_header(
        "Content-Type", 'multipart/report; report-type="disposition-notification"'
    )
    return report


def test_an_mdn_names_the_disclosure_it_is_about() -> None:
    reply = read_reply(_mdn(f"<{SENT.upper()}.1@medway-council.example>").as_bytes())
    assert reply == Disposition(SENT, "automatic-action/MDN-sent-automatically; displayed")


def test_an_mdn_about_a_message_we_did_not_send_is_unmatched() -> None:
    assert read_reply(_mdn("<abc@elsewhere.example>").as_bytes()) == RefusedMail("mdn_unmatched")


def test_a_signed_mail_is_handed_on_whole_to_be_verified() -> None:
    raw = (
        b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; '
        b'micalg=sha-256; boundary="b"\r\nSubject: Re: ' + SENT.encode() + b"\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n"
    )
    assert read_reply(raw) == SignedMail(raw, frozenset({SENT}))


def test_bytes_that_are_no_mail_at_all_are_no_receipt() -> None:
    assert isinstance(read_reply(b"\x00\xff garbage"), RefusedMail)


HEADERS = st.sampled_from(
    [
        b"Content-Type: multipart/report; report-type=disposition-notification; boundary=b\r\n",
        b"Content-Type: message/disposition-notification\r\n",
        b'Content-Type: multipart/mixed; boundary="\r\n',
        b'Content-Type: application/jose; name="=?utf-8?q?=ff?=.jwt"\r\n',
        b"Content-Disposition: attachment; filename*=utf-8''%ff%fe.jwt\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"In-Reply-To: <" + SENT.encode() + b".1@x>\r\n",
        b"Subject: =?unknown?b?////?=\r\n",
        b"--b\r\n",
        b"Original-Message-ID: <\r\n",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(HEADERS, st.binary(max_size=40)), max_size=12))
def test_no_mail_however_broken_raises(parts: list[bytes]) -> None:
    """Whatever lands in the mailbox, reading it gives a classification, never an exception."""
    reply = read_reply(b"".join(parts))
    assert isinstance(reply, ReceiptReply | SignedMail | Disposition | RefusedMail)
