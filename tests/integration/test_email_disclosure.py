"""What an email partner receives, against aiosmtpd with STARTTLS on loopback.

Baseline: the readable rendering and the council-signed JWT attached, verifiable with the
council's JWKS. S/MIME: opened and verified with OpenSSL's `cms` command line, no code of ours.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import shutil
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from joserfc.jwk import ECKey

from adapters.email import EmailChannel, SmtpOptions
from gateway import jose
from gateway.application.channel import SIGNED_JWT, DeliveryOutcome, Envelope
from gateway.council_smime import CouncilSmime, install_council_smime, self_signed
from gateway.jose import b64url_digest
from gateway.sealing import EnvelopeAgreement, EnvelopeClaims, sign_jwt
from gateway.signer import FileSigner
from tests.mesh_sandbox import SandboxPki, free_port, make_test_pki
from tests.smime_pki import PARTNER_MAILBOX, Issued, make_partner_cert

COUNCIL_ADDRESS = "disclosures@medway-council.example"
RECEIPTS_MAILBOX = "receipts@medway-council.example"
SURNAME = "O'Neil <b>&</b> Sons"  # synthetic; must arrive escaped in HTML


@dataclass
class RawMta:
    """The partner's mail server: keeps the exact bytes of each message accepted."""

    raw: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.raw.append(envelope.content)
        return "250 Message accepted for delivery"

    def message(self, index: int = 0) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw[index], policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@pytest.fixture
def pki(tmp_path: Path) -> SandboxPki:
    return make_test_pki(tmp_path / "pki")


@pytest.fixture
def mta(pki: SandboxPki) -> Iterator[tuple[RawMta, int]]:
    handler = RawMta()
    port = free_port()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True
    )
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def council_key() -> ECKey:
    return ECKey.generate_key("P-256")


@pytest.fixture(scope="module")
def council_smime_pem() -> tuple[bytes, bytes]:
    return self_signed(COUNCIL_ADDRESS, "medway-council", now=datetime.now(UTC))


@pytest.fixture(scope="module")
def partner_cert() -> Issued:
    return make_partner_cert()


def council_smime(tmp_path: Path, pem: tuple[bytes, bytes]) -> CouncilSmime:
    return install_council_smime(
        *pem, tmp_path / "smime-cert.pem", tmp_path / "smime-key.pem", now=datetime.now(UTC)
    )


def options(port: int, pki: SandboxPki, smime: CouncilSmime | None = None) -> SmtpOptions:
    return SmtpOptions(
        host="localhost",
        port=port,
        from_address=COUNCIL_ADDRESS,
        council="medway-council",
        ca_bundle=str(pki.ca_cert),
        timeout=5.0,
        notify_address=RECEIPTS_MAILBOX,
        smime=smime,
    )


def signed_disclosure(key: ECKey) -> Envelope:
    """A council-signed JWT as the worker hands it to the channel."""
    disclosure_id = str(uuid.uuid4())
    claims = EnvelopeClaims(
        iss="medway-council",
        aud="dwp-counter-fraud",
        jti=disclosure_id,
        iat=datetime.now(UTC),
        agreement=EnvelopeAgreement("KM-DWP-FRAUD-01", 1),
        purpose="fraud_prevention",
        subject={"nhs_number": "9434765919"},
        data={
            "identity": {"family_name": SURNAME, "date_of_birth": "2011-03-02"},
            "relatives": [{"name": "Sam Tester"}, {"name": "Alex Tester"}],
        },
        retain_until=date(2030, 1, 1),
        onward_sharing="prohibited",
    )
    token = sign_jwt(claims.to_jwt(), FileSigner("council-1", key)).encode("ascii")
    return Envelope(
        disclosure_id, "dwp-counter-fraud", token, b64url_digest(token), content_type=SIGNED_JWT
    )


def jwks(key: ECKey) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False, kid="council-1", use="sig", alg="ES256")]}


async def test_baseline_message_is_readable_and_carries_the_signed_jwt(
    mta: tuple[RawMta, int], pki: SandboxPki, council_key: ECKey
) -> None:
    handler, port = mta
    sent = signed_disclosure(council_key)
    result = await EmailChannel(options(port, pki)).deliver(sent, {"address": PARTNER_MAILBOX})
    assert result.outcome is DeliveryOutcome.DISPATCHED, result
    message = handler.message()
    assert message["Subject"] == sent.message_id
    assert message["Disposition-Notification-To"] == RECEIPTS_MAILBOX
    assert "KM-DWP" not in handler.raw[0].decode()  # no agreement id, even in the body
    text, page = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None
    assert page is not None
    assert "Date of birth" in text.get_content()  # the dictionary's label, not the path
    assert "2011-03-02" in text.get_content()
    assert "(2)" in text.get_content()  # the second relative, numbered
    assert SURNAME in text.get_content()
    assert "O&#x27;Neil &lt;b&gt;&amp;&lt;/b&gt; Sons" in page.get_content()
    assert "<b>&</b>" not in page.get_content()
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == f"{sent.message_id}.jwt"
    assert attachment.get_content_type() == "application/jwt"
    token = attachment.get_content()
    assert b64url_digest(token) == sent.digest  # the receipt digest rule
    claims = jose.parse_json_object(
        jose.verify_compact(token, jwks(council_key), algorithms=["ES256"])
    )
    assert claims["jti"] == sent.message_id
    assert "digest" not in result.detail  # the stored digest stands


def _openssl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], capture_output=True, timeout=30, check=False)


async def test_smime_opens_and_verifies_with_openssl_cms(
    mta: tuple[RawMta, int],
    pki: SandboxPki,
    *,
    council_key: ECKey,
    council_smime_pem: tuple[bytes, bytes],
    partner_cert: Issued,
    tmp_path: Path,
) -> None:
    assert shutil.which("openssl"), "openssl is needed to open what arrives"
    handler, port = mta
    smime = council_smime(tmp_path / "keys", council_smime_pem)
    sent = signed_disclosure(council_key)
    target = {
        "address": PARTNER_MAILBOX,
        "smime_certificate": partner_cert.cert_pem.decode(),
        "smime_fingerprint": "f" * 64,
    }
    result = await EmailChannel(options(port, pki, smime)).deliver(sent, target)
    assert result.outcome is DeliveryOutcome.DISPATCHED, result
    raw = handler.raw[0]
    assert SURNAME.encode() not in raw
    assert b"Date of birth" not in raw
    message = handler.message()
    assert message["Subject"] == sent.message_id
    assert message.get_content_type() == "application/pkcs7-mime"
    assert message.get_param("smime-type") == "enveloped-data"
    der = message.get_content()
    assert result.detail["digest"] == b64url_digest(der)  # receipts digest the CMS DER

    received, signed, inner = tmp_path / "in.eml", tmp_path / "signed.eml", tmp_path / "inner"
    received.write_bytes(raw)
    recip_cert, recip_key = partner_cert.write(tmp_path, "partner")
    council_cert = tmp_path / "keys" / "smime-cert.pem"
    decrypted = _openssl(
        "cms", "-decrypt", "-in", str(received), "-recip", str(recip_cert),
        "-inkey", str(recip_key), "-out", str(signed),
    )  # fmt: skip
    assert decrypted.returncode == 0, decrypted.stderr
    verified = _openssl(
        "cms", "-verify", "-in", str(signed), "-CAfile", str(council_cert), "-out", str(inner)
    )
    assert verified.returncode == 0, verified.stderr
    assert b"Verification successful" in verified.stderr
    entity = email.message_from_bytes(inner.read_bytes(), policy=email.policy.default)
    assert isinstance(entity, EmailMessage)
    text = entity.get_body(("plain",))
    assert text is not None
    assert "Date of birth" in text.get_content()
    [attachment] = list(entity.iter_attachments())
    assert attachment.get_content() == sent.body  # the council-signed JWT, no JWE inside

    # The check means something: a tampered signed entity does not verify.
    tampered = tmp_path / "tampered.eml"
    tampered.write_bytes(signed.read_bytes().replace(b"Date of birth", b"Date of birtH", 1))
    refused = _openssl("cms", "-verify", "-in", str(tampered), "-CAfile", str(council_cert))
    assert refused.returncode != 0


async def test_partner_with_a_certificate_gets_nothing_without_the_councils(
    mta: tuple[RawMta, int], pki: SandboxPki, council_key: ECKey, partner_cert: Issued
) -> None:
    handler, port = mta
    target = {"address": PARTNER_MAILBOX, "smime_certificate": partner_cert.cert_pem.decode()}
    result = await EmailChannel(options(port, pki)).deliver(signed_disclosure(council_key), target)
    assert (result.outcome, result.reason) == (DeliveryOutcome.TRANSIENT, "council_smime_missing")
    assert handler.raw == []


async def test_message_over_the_limit_is_not_sent(
    mta: tuple[RawMta, int], pki: SandboxPki, council_key: ECKey
) -> None:
    handler, port = mta
    small = dataclasses.replace(options(port, pki), max_message_bytes=1000)
    result = await EmailChannel(small).deliver(
        signed_disclosure(council_key), {"address": PARTNER_MAILBOX}
    )
    assert (result.outcome, result.reason) == (DeliveryOutcome.PERMANENT, "smtp_message_too_large")
    assert handler.raw == []


async def test_a_body_that_is_not_a_signed_jwt_is_refused_not_sent(
    mta: tuple[RawMta, int], pki: SandboxPki
) -> None:
    handler, port = mta
    channel = EmailChannel(options(port, pki))
    for body in (b"no dots at all", b"a.!!!.c", b"a.WzFd.c"):  # the last: a JSON list
        broken = Envelope(
            str(uuid.uuid4()), "p", body, b64url_digest(body), content_type=SIGNED_JWT
        )
        result = await channel.deliver(broken, {"address": PARTNER_MAILBOX})
        assert (result.outcome, result.reason) == (DeliveryOutcome.PERMANENT, "envelope_malformed")
    assert handler.raw == []
