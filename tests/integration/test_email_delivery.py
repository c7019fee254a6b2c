"""An email partner end to end through the store: submitted, held at rest, sent, receipted.

The signed JWT is stored sealed under the gateway's data key and opened only by the worker; a
partner with a certificate gets S/MIME and the disclosure's digest becomes the CMS's; a revoked
certificate is never used, and never traded for the TLS-only baseline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import json
import os
import shutil
import ssl
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope

from adapters.email import EmailChannel
from agreements.loader import default_catalog_dir
from agreements.model import ChannelSpec
from agreements.samples import child_record
from gateway import jose
from gateway.application.channel import DeliveryOutcome, DeliveryResult, Envelope
from gateway.application.commands import Queued
from gateway.application.partner_cert_admin import add_partner_cert, revoke_partner_cert
from gateway.application.recipient_notices import NoticeKind, NoticeRequest
from gateway.clients import Client
from gateway.council_smime import install_council_smime, self_signed
from gateway.delivery.worker import DeliveryWorker, Failed, Finished, Transient
from gateway.http.schemas import DisclosureSubmission
from gateway.jose import b64url_digest
from gateway.keys import verify_compact
from gateway.notice_envelope import NOTICE_TYP
from gateway.partner_certs import PartnerCertificate
from gateway.partner_keys import generate_partner_keys
from gateway.receipts import make_receipt
from gateway.service import Gateway, smtp_options
from gateway.signed_at_rest import AT_REST_KID
from gateway.store import delivery_records, disclosures, smime_seals
from gateway.store.disclosure_model import Status
from gateway.store.tables import disclosure_events, outbox
from gateway.store.unit_of_work import Connection
from tests.gateway_support import (
    ADMIN,
    TEST_NOW,
    build_harness,
    isolated_settings,
    register_partner_key,
)
from tests.integration.cli_support import edit
from tests.integration.store_support import new_disclosure
from tests.integration.test_email_disclosure import RawMta
from tests.integration.test_email_disclosure import _openssl as openssl
from tests.mesh_sandbox import SandboxPki, free_port, make_test_pki
from tests.smime_pki import Issued, make_partner_cert

PARTNER = "hoo-short-breaks"
AGREEMENT = "KM-RSP-008"
CLIENT = Client("case-system", frozenset({AGREEMENT}))
CHILD_NAME = "Jordan Example"  # synthetic, from agreements/samples.py


def submission() -> dict[str, Any]:
    return {
        "agreement": AGREEMENT,
        "purpose": "direct_care",
        "subject": {"local_id": "MC-C-000123"},
        "record": child_record(),
        "requested_by": {"user": "sw-0042", "role": "social_worker"},
        "reason": "Short break booking",
    }


class Rig:
    """A gateway with the email channel to a loopback aiosmtpd, and a worker."""

    def __init__(self, gateway: Gateway, mta: FlakyMta) -> None:
        self.gateway, self.mta = gateway, mta
        self.channel = EmailChannel(smtp_options(gateway.settings))
        self.worker = DeliveryWorker(
            store=gateway.store,
            policy=gateway.policy,
            intake=gateway.receipts,
            channels={"email": self.channel},
            metrics=gateway.metrics,
            clock=gateway.clock,
            default_retry=gateway.settings.retry_policy,
            protection=gateway.protection,
        )

    async def submit(self) -> str:
        command = DisclosureSubmission.model_validate(submission()).to_command()
        result = await self.gateway.submit(CLIENT, command)
        assert isinstance(result, Queued), result
        return result.id

    async def stored(self, id_: str) -> tuple[bytes, Any]:
        async with self.gateway.store.read() as conn:
            row = (await conn.execute(outbox.select().where(outbox.c.disclosure_id == id_))).one()
            return row.envelope, await disclosures.get(conn, id_)

    async def attempt(self, id_: str, attempt: int = 1) -> Any:
        body, found = await self.stored(id_)
        return await self.worker.attempt(Envelope(id_, PARTNER, body, found.digest, attempt))


@dataclasses.dataclass
class FlakyMta(RawMta):
    """The partner's MTA; answers 451 to the first `defer` messages, after reading them."""

    defer: int = 0
    offered: list[bytes] = dataclasses.field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.offered.append(envelope.content)
        if self.defer > 0:
            self.defer -= 1
            return "451 Try again later"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
async def rig(tmp_path: Path, database_url: str) -> AsyncIterator[Rig]:
    pki: SandboxPki = make_test_pki(tmp_path / "pki")
    mta, port = FlakyMta(), free_port()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    controller = Controller(
        mta, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True
    )
    controller.start()
    catalog = tmp_path / "catalog"
    shutil.copytree(default_catalog_dir(), catalog)
    # Reviewed on time in this copy, so the short-breaks agreement lets disclosures go.
    edit(
        catalog / "children" / "short-breaks.yaml",
        ("review_due: 2026-06-30", "review_due: 2027-06-30"),
    )
    settings = isolated_settings(
        tmp_path,
        database_url,
        smtp_host="localhost",
        smtp_port=port,
        smtp_ca_bundle=str(pki.ca_cert),
        smtp_from="disclosures@medway-council.example",
    )
    install_council_smime(
        *self_signed("disclosures@medway-council.example", "medway-council", now=TEST_NOW),
        settings.keys_dir / "smime-cert.pem",
        settings.keys_dir / "smime-key.pem",
        now=TEST_NOW,
    )
    harness = await build_harness(
        settings, catalog_dir=catalog, deliverable=None, without_keys=frozenset({PARTNER})
    )
    try:
        yield Rig(harness.gateway, mta)
    finally:
        await harness.gateway.close()
        controller.stop()


async def partner_receipts(rig: Rig, message_id: str, received: bytes, sig: Any) -> str:
    """The partner's signed receipt over the bytes it received, as the council records it."""
    receipt = make_receipt(
        partner_id=PARTNER,
        council_id=rig.gateway.settings.org_id,
        message_id=message_id,
        body_received=received,
        status="received",
        signing_key=sig,
        now=TEST_NOW,
        receipt_id=str(uuid.uuid4()),
    )
    return str((await rig.gateway.receipts.accept(receipt)).status)


async def new_partner_cert(rig: Rig, *, days: int, at: datetime = TEST_NOW) -> PartnerCertificate:
    """Register a new S/MIME certificate for the partner, valid `days` from TEST_NOW, in force."""
    cert = make_partner_cert(days=days, now=TEST_NOW).cert_pem
    added = await add_partner_cert(rig.gateway.store, PARTNER, cert, actor=ADMIN, at=at)
    await rig.gateway.policy.refresh()
    return added


async def test_signed_jwt_is_held_at_rest_then_sent_readable_and_receipted(rig: Rig) -> None:
    id_ = await rig.submit()  # the partner has no JWK at all: email does not need one
    body, found = await rig.stored(id_)
    assert AT_REST_KID in found.key_ids
    assert not body.startswith(b"ey")  # not a JWS or JWE: sealed under the data key
    assert CHILD_NAME.encode() not in body
    assert await rig.attempt(id_) == Finished("dispatched")
    message = email.message_from_bytes(rig.mta.raw[0], policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == id_
    text = message.get_body(("plain",))
    assert text is not None
    assert CHILD_NAME in text.get_content()
    [attachment] = list(message.iter_attachments())
    assert b64url_digest(attachment.get_content()) == found.digest  # what receipts digest


async def test_smime_partner_digest_is_the_cms_and_a_revoked_cert_is_never_used(
    rig: Rig, tmp_path: Path
) -> None:
    issued: Issued = make_partner_cert(days=400, now=TEST_NOW)
    cert = await add_partner_cert(
        rig.gateway.store, PARTNER, issued.cert_pem, actor=ADMIN, at=TEST_NOW
    )
    await rig.gateway.policy.refresh()
    id_ = await rig.submit()
    _body, before = await rig.stored(id_)
    assert await rig.attempt(id_) == Finished("dispatched")
    message = email.message_from_bytes(rig.mta.raw[0], policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message.get_content_type() == "application/pkcs7-mime"
    assert CHILD_NAME.encode() not in rig.mta.raw[0]
    _body, after = await rig.stored(id_)
    assert after.digest == b64url_digest(message.get_content()) != before.digest

    await revoke_partner_cert(
        rig.gateway.store, PARTNER, cert.fingerprint, "compromised", actor=ADMIN,
        at=TEST_NOW + timedelta(minutes=1),
    )  # fmt: skip
    await rig.gateway.policy.refresh()
    second = await rig.submit()
    verdict = await rig.attempt(second)
    assert isinstance(verdict, Transient)
    assert verdict.reason == "partner_cert_revoked"
    assert len(rig.mta.raw) == 1  # nothing sent, not even over TLS only
    results = rig.gateway.metrics.channel_results
    assert results.labels("email", "dispatched", "")._value.get() == 1
    assert results.labels("email", "transient", "partner_cert_revoked")._value.get() == 1


def cms_of(raw: bytes) -> bytes:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message.get_content_type() == "application/pkcs7-mime"
    der = message.get_content()
    assert isinstance(der, bytes)
    return der


async def test_every_attempt_sends_the_same_cms_and_a_receipt_for_it_matches(
    rig: Rig, tmp_path: Path
) -> None:
    _enc, sig = generate_partner_keys("ec")
    await register_partner_key(rig.gateway, PARTNER, sig, "sig", TEST_NOW)
    issued: Issued = make_partner_cert(days=400, now=TEST_NOW)
    await add_partner_cert(rig.gateway.store, PARTNER, issued.cert_pem, actor=ADMIN, at=TEST_NOW)
    await rig.gateway.policy.refresh()
    id_ = await rig.submit()
    held, _found = await rig.stored(id_)
    rig.mta.defer = 1  # the first attempt reaches the partner's MTA, which answers 451

    first = await rig.attempt(id_, attempt=1)
    assert isinstance(first, Transient)
    assert first.reason == "smtp_deferred"
    body, after_first = await rig.stored(id_)
    assert body == held  # the signed JWT stays held at rest beside the CMS
    first_cms = cms_of(rig.mta.offered[0])
    assert after_first.digest == b64url_digest(first_cms)  # recorded before it went

    assert await rig.attempt(id_, attempt=2) == Finished("dispatched")
    second_cms = cms_of(rig.mta.raw[0])
    assert second_cms == first_cms  # the same bytes, not a new CMS per attempt
    assert rig.mta.offered[0] != rig.mta.raw[0]  # a new message (Message-ID) around them
    _body, dispatched = await rig.stored(id_)
    assert dispatched.digest == b64url_digest(second_cms)

    # What the partner received opens with OpenSSL, and its receipt over either copy matches.
    received = tmp_path / "in.eml"
    received.write_bytes(rig.mta.offered[0])
    recip_cert, recip_key = issued.write(tmp_path, "partner")
    opened = openssl(
        "cms", "-decrypt", "-in", str(received), "-recip", str(recip_cert), "-inkey", str(recip_key)
    )
    assert opened.returncode == 0, opened.stderr
    assert CHILD_NAME.encode() not in rig.mta.offered[0]
    assert await partner_receipts(rig, id_, first_cms, sig) == "receipted"
    async with rig.gateway.store.read() as conn:
        query = disclosure_events.select().where(disclosure_events.c.disclosure_id == id_)
        events = [row.type for row in await conn.execute(query)]
    assert events.count("smime_sealed") == 1


async def test_a_replaced_certificate_gets_a_cms_of_its_own(rig: Rig) -> None:
    old = await new_partner_cert(rig, days=400)
    id_ = await rig.submit()
    rig.mta.defer = 1
    assert isinstance(await rig.attempt(id_, attempt=1), Transient)
    _body, sealed_for_old = await rig.stored(id_)
    await revoke_partner_cert(
        rig.gateway.store,
        PARTNER,
        old.fingerprint,
        "compromised",
        actor=ADMIN,
        at=TEST_NOW + timedelta(minutes=1),
    )
    await new_partner_cert(rig, days=400, at=TEST_NOW + timedelta(minutes=2))
    assert await rig.attempt(id_, attempt=2) == Finished("dispatched")
    cms = cms_of(rig.mta.raw[0])
    assert cms != cms_of(rig.mta.offered[0])  # never sent to the revoked certificate again
    _body, found = await rig.stored(id_)
    assert found.digest == b64url_digest(cms) != sealed_for_old.digest


async def test_a_newer_certificate_leaves_the_kept_cms_in_use_while_its_own_is_usable(
    rig: Rig,
) -> None:
    await new_partner_cert(rig, days=400)
    id_ = await rig.submit()
    rig.mta.defer = 1
    assert isinstance(await rig.attempt(id_, attempt=1), Transient)
    # The partner adds a certificate valid for longer, which new mail would be encrypted to.
    await new_partner_cert(rig, days=700, at=TEST_NOW + timedelta(minutes=1))
    assert await rig.attempt(id_, attempt=2) == Finished("dispatched")
    assert cms_of(rig.mta.raw[0]) == cms_of(rig.mta.offered[0])


async def test_receipt_for_the_attachment_digest_is_accepted(rig: Rig) -> None:
    _enc, sig = generate_partner_keys("ec")
    await register_partner_key(rig.gateway, PARTNER, sig, "sig", TEST_NOW)
    await rig.gateway.policy.refresh()
    id_ = await rig.submit()
    assert await rig.attempt(id_) == Finished("dispatched")
    message = email.message_from_bytes(rig.mta.raw[0], policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    [attachment] = list(message.iter_attachments())
    assert await partner_receipts(rig, id_, attachment.get_content(), sig) == "receipted"


async def test_a_partner_moved_off_email_never_gets_the_signed_jwt(rig: Rig) -> None:
    id_ = await rig.submit()
    snapshot = rig.gateway.policy.snapshot
    partner = snapshot.partners[PARTNER]
    webhook = ChannelSpec(type="webhook", endpoint="https://short-breaks.example/in")
    moved = {**snapshot.partners, PARTNER: partner.model_copy(update={"channel": webhook})}
    rig.gateway.policy.snapshot = dataclasses.replace(snapshot, partners=moved)
    spy = RecordingChannel()
    rig.worker.channels = {"email": rig.channel, "webhook": spy}
    assert await rig.attempt(id_) == Failed("partner_channel_changed")
    assert spy.sent == []
    _body, found = await rig.stored(id_)
    assert str(found.status) == "failed"


class RecordingChannel:
    """A webhook stand-in that keeps whatever it is asked to deliver."""

    def __init__(self) -> None:
        self.sent: list[Envelope] = []

    async def deliver(self, envelope: Envelope, target: Any) -> DeliveryResult:
        self.sent.append(envelope)
        return DeliveryResult(DeliveryOutcome.DISPATCHED)

    async def close(self) -> None:
        """Nothing to release."""


NHS_NUMBER = "9990000026"  # synthetic
OLD_DOB, NEW_DOB = "2011-03-02", "2011-04-03"  # synthetic
NOTICE_REASON = "Date of birth typed wrongly"
RECEIVED = ("identity.name", "identity.date_of_birth", "relatives[*].name")


async def received_earlier(rig: Rig) -> str:
    """A disclosure about the person the partner received earlier (dispatched)."""
    new = dataclasses.replace(
        new_disclosure(rig.gateway.protection, partner=PARTNER, nhs_number=NHS_NUMBER),
        agreement_id=AGREEMENT,
        agreement_version=1,
        purpose="direct_care",
        fields_sent=RECEIVED,
    )

    async def work(conn: Connection) -> None:
        await disclosures.record_accepted(
            conn, new, envelope=b"x", digest="d", actor=ADMIN, at=TEST_NOW
        )
        await disclosures.transition(
            conn, new.id, Status.DISPATCHED, event_type="dispatched", actor=ADMIN, at=TEST_NOW
        )

    await rig.gateway.store.write(work)
    return new.id


async def notify(rig: Rig) -> str:
    """A rectification of the date of birth and a correction of an unnamed field."""
    run = await rig.gateway.notices.send(
        NoticeRequest(
            nhs_number=NHS_NUMBER,
            kind=NoticeKind.RECTIFICATION,
            reason=NOTICE_REASON,
            fields=("identity.date_of_birth", "identity.name"),
            corrections={"identity.date_of_birth": NEW_DOB},
            actor=ADMIN,
        )
    )
    [notice] = run.notices
    assert (notice.partner, notice.status, notice.not_sent) == (PARTNER, "queued", None)
    return notice.notice_id


def assert_notice_rendering(entity: EmailMessage, notice_id: str, disclosure_id: str) -> None:
    """What the member of staff reads: kind, disclosures, fields by label, corrected value."""
    for kind in ("plain", "html"):
        part = entity.get_body((kind,))
        assert part is not None
        text = part.get_content()
        assert notice_id in text
        assert "Rectification" in text
        assert "Article 19" in text
        assert disclosure_id in text
        assert "Date of birth" in text
        assert "identity.name" in text
        assert f"corrected: {NEW_DOB}" in text
        assert "Jordan" not in text  # the name was not corrected: no value goes for it
    [attachment] = list(entity.iter_attachments())
    assert attachment.get_filename() == f"{notice_id}.jwt"


def notice_claims(token: bytes, jwks: dict[str, Any]) -> dict[str, Any]:
    """A partner's system: verify the council's signature, check it is a notice."""
    assert jose.read_header(token, 3)["typ"] == NOTICE_TYP
    claims: dict[str, Any] = json.loads(verify_compact(token, jwks))
    return claims


async def test_a_notice_to_a_tls_partner_is_readable_signed_and_receipted(rig: Rig) -> None:
    _enc, sig = generate_partner_keys("ec")  # a signing key only: email needs no JWK
    await register_partner_key(rig.gateway, PARTNER, sig, "sig", TEST_NOW)
    await rig.gateway.policy.refresh()
    disclosure_id = await received_earlier(rig)
    notice_id = await notify(rig)
    body, found = await rig.stored(notice_id)
    assert AT_REST_KID in found.key_ids
    assert NEW_DOB.encode() not in body  # held at rest under the data key

    assert await rig.attempt(notice_id) == Finished("dispatched")
    message = email.message_from_bytes(rig.mta.raw[0], policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == notice_id
    assert_notice_rendering(message, notice_id, disclosure_id)
    [attachment] = list(message.iter_attachments())
    token = attachment.get_content()
    claims = notice_claims(token, rig.gateway.jwks())
    assert claims["notice"]["disclosures"] == [disclosure_id]
    assert claims["notice"]["corrections"] == {"identity.date_of_birth": NEW_DOB}
    assert b64url_digest(token) == found.digest

    assert await partner_receipts(rig, notice_id, token, sig) == "receipted"


async def test_a_notice_to_an_smime_partner_opens_with_openssl_and_is_receipted(
    rig: Rig, tmp_path: Path
) -> None:
    _enc, sig = generate_partner_keys("ec")
    await register_partner_key(rig.gateway, PARTNER, sig, "sig", TEST_NOW)
    issued: Issued = make_partner_cert(days=400, now=TEST_NOW)
    await add_partner_cert(rig.gateway.store, PARTNER, issued.cert_pem, actor=ADMIN, at=TEST_NOW)
    await rig.gateway.policy.refresh()
    disclosure_id = await received_earlier(rig)
    notice_id = await notify(rig)
    assert await rig.attempt(notice_id) == Finished("dispatched")
    raw = rig.mta.raw[0]
    assert NEW_DOB.encode() not in raw
    assert b"Date of birth" not in raw
    der = cms_of(raw)
    _body, found = await rig.stored(notice_id)
    assert found.digest == b64url_digest(der)

    received, signed, inner = tmp_path / "in.eml", tmp_path / "signed.eml", tmp_path / "inner"
    received.write_bytes(raw)
    recip_cert, recip_key = issued.write(tmp_path, "partner")
    decrypted = openssl(
        "cms",
        "-decrypt",
        "-in",
        str(received),
        "-recip",
        str(recip_cert),
        "-inkey",
        str(recip_key),
        "-out",
        str(signed),
    )
    assert decrypted.returncode == 0, decrypted.stderr
    council_cert = rig.gateway.settings.keys_dir / "smime-cert.pem"
    verified = openssl(
        "cms", "-verify", "-in", str(signed), "-CAfile", str(council_cert), "-out", str(inner)
    )
    assert verified.returncode == 0, verified.stderr
    entity = email.message_from_bytes(inner.read_bytes(), policy=email.policy.default)
    assert isinstance(entity, EmailMessage)
    assert_notice_rendering(entity, notice_id, disclosure_id)
    [attachment] = list(entity.iter_attachments())
    claims = notice_claims(attachment.get_content(), rig.gateway.jwks())
    assert claims["notice"]["kind"] == "rectification"

    assert await partner_receipts(rig, notice_id, der, sig) == "receipted"


async def events_of(rig: Rig, id_: str) -> list[str]:
    async with rig.gateway.store.read() as conn:
        query = disclosure_events.select().where(disclosure_events.c.disclosure_id == id_)
        return [row.type for row in await conn.execute(query)]


async def test_two_attempts_racing_to_seal_both_send_the_one_cms_kept_first(rig: Rig) -> None:
    await new_partner_cert(rig, days=400)
    id_ = await rig.submit()
    # A duplicate delivery (the relay published the envelope twice): both attempts find the
    # disclosure queued and no CMS kept, and each makes its own before either keeps it.
    made, both_made = 0, asyncio.Event()
    seal = rig.channel.seal_for_partner

    async def seal_together(envelope: Envelope, target: Any, at: datetime) -> Any:
        nonlocal made
        sealed = await seal(envelope, target, at)
        made += 1
        if made == 2:
            both_made.set()
        await both_made.wait()
        return sealed

    rig.channel.seal_for_partner = seal_together  # type: ignore[method-assign]  # a test seam
    verdicts = await asyncio.gather(rig.attempt(id_), rig.attempt(id_))
    assert all(isinstance(v, Finished) for v in verdicts), verdicts
    assert made == 2
    first, second = (cms_of(raw) for raw in rig.mta.raw)
    assert first == second  # the CMS kept first, whichever attempt made it
    _body, found = await rig.stored(id_)
    assert found.digest == b64url_digest(first)  # so a receipt over what went matches
    async with rig.gateway.store.read() as conn:
        kept = await smime_seals.kept(conn, id_)
    assert kept is not None
    assert kept.cms == first
    assert (await events_of(rig, id_)).count("smime_sealed") == 1


async def test_a_cms_is_kept_only_over_what_the_attempt_found_and_while_queued(rig: Rig) -> None:
    id_ = await rig.submit()

    async def keep(cms: bytes, replacing: bytes | None) -> bool:
        async def work(conn: Connection) -> bool:
            seal = smime_seals.Seal("cert", "signer", cms)
            return await smime_seals.keep(
                conn, id_, seal, replacing=replacing, digest=b64url_digest(cms), at=TEST_NOW
            )

        return bool(await rig.gateway.store.write(work))

    assert await keep(b"first", None)
    assert not await keep(b"second", None)  # another attempt kept one first
    assert await keep(b"third", b"first")  # made again over the stale one this attempt found
    assert not await keep(b"fourth", b"first")  # ... only once
    _body, found = await rig.stored(id_)
    assert found.digest == b64url_digest(b"third")

    async def fail(conn: Connection) -> None:
        await delivery_records.fail(conn, id_, reason="test", at=TEST_NOW)

    await rig.gateway.store.write(fail)
    assert not await keep(b"fifth", b"third")  # no longer queued: the digest stays
    _body, failed = await rig.stored(id_)
    assert failed.digest == b64url_digest(b"third")
    assert (await events_of(rig, id_)).count("smime_sealed") == 2


def signed_by(raw: bytes, partner: Issued, council_cert: Path, tmp_path: Path) -> bool:
    """Whether the S/MIME message opens for the partner and is signed by `council_cert`."""
    received, signed = tmp_path / "in.eml", tmp_path / "signed.eml"
    received.write_bytes(raw)
    recip_cert, recip_key = partner.write(tmp_path, "partner")
    decrypt = [
        "-decrypt",
        "-in",
        str(received),
        "-recip",
        str(recip_cert),
        "-inkey",
        str(recip_key),
    ]
    opened = openssl("cms", *decrypt, "-out", str(signed))
    assert opened.returncode == 0, opened.stderr
    verified = openssl(
        "cms", "-verify", "-in", str(signed), "-CAfile", str(council_cert), "-out", os.devnull
    )
    return verified.returncode == 0


async def test_a_new_council_certificate_gets_a_cms_signed_with_it(
    rig: Rig, tmp_path: Path
) -> None:
    issued: Issued = make_partner_cert(days=400, now=TEST_NOW)
    await add_partner_cert(rig.gateway.store, PARTNER, issued.cert_pem, actor=ADMIN, at=TEST_NOW)
    await rig.gateway.policy.refresh()
    id_ = await rig.submit()
    rig.mta.defer = 1
    assert isinstance(await rig.attempt(id_, attempt=1), Transient)
    settings = rig.gateway.settings
    old_cert = tmp_path / "old-council.pem"
    shutil.copy(settings.keys_dir / "smime-cert.pem", old_cert)
    assert signed_by(rig.mta.offered[0], issued, old_cert, tmp_path)

    # The council installs a new S/MIME certificate (`gateway-admin keys smime`) and restarts.
    install_council_smime(
        *self_signed("disclosures@medway-council.example", "medway-council", now=TEST_NOW),
        settings.keys_dir / "smime-cert.pem",
        settings.keys_dir / "smime-key.pem",
        now=TEST_NOW,
    )
    rig.worker.channels = {"email": EmailChannel(smtp_options(settings))}
    assert await rig.attempt(id_, attempt=2) == Finished("dispatched")
    cms = cms_of(rig.mta.raw[0])
    assert cms != cms_of(rig.mta.offered[0])
    assert signed_by(rig.mta.raw[0], issued, settings.keys_dir / "smime-cert.pem", tmp_path)
    assert not signed_by(rig.mta.raw[0], issued, old_cert, tmp_path)
    _body, found = await rig.stored(id_)
    assert found.digest == b64url_digest(cms)
    assert (await events_of(rig, id_)).count("smime_sealed") == 2


async def test_a_council_certificate_past_its_date_seals_nothing_until_renewed(
    rig: Rig,
) -> None:
    await new_partner_cert(rig, days=400)
    id_ = await rig.submit()
    rig.mta.defer = 1
    assert isinstance(await rig.attempt(id_, attempt=1), Transient)
    _body, before = await rig.stored(id_)
    # The council's certificate is good for 365 days, the partner's for 400: past the
    # council's, the kept CMS is not sent again and no new one is signed with it.
    rig.worker.clock = lambda: TEST_NOW + timedelta(days=370)
    expired = await rig.attempt(id_, attempt=2)
    assert isinstance(expired, Transient)
    assert expired.reason == "council_smime_expired"
    assert len(rig.mta.offered) == 1
    assert rig.mta.raw == []
    _body, after = await rig.stored(id_)
    assert after.digest == before.digest
