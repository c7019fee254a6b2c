"""The Article 19 notice envelope: its own `typ`, opened by the notice opener only; where it goes
(the partner's channel, on MESH its notice workflow id); corrected values never more than the
partner received."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.mesh import MeshTarget
from agreements.loader import default_catalog_dir, load_catalog
from agreements.model import DEFAULT_NOTICE_WORKFLOW_ID, ChannelSpec, notice_target
from gateway import jose
from gateway.application.notice_sending import corrected_values
from gateway.application.recipient_notices import PartnerNotice
from gateway.keys import CouncilKeyring
from gateway.notice_envelope import NOTICE_TYP, NoticeClaims, open_notice, seal_notice
from gateway.partner_keys import PartnerKey, generate_partner_keys, public_jwk
from gateway.sealing import EnvelopeError, open_envelope

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
CATALOG = load_catalog(default_catalog_dir())


def claims(partner: str) -> NoticeClaims:
    return NoticeClaims(
        iss="medway-council",
        aud=partner,
        jti="n-1",
        iat=T0,
        kind="rectification",
        reason="date of birth corrected",
        disclosures=("d-1", "d-2"),
        fields=("identity.date_of_birth",),
        corrections={"identity.date_of_birth": "2011-04-30"},
        exp=T0 + timedelta(days=30),
    )


def test_a_notice_opens_as_a_notice_and_never_as_a_disclosure(tmp_path: Path) -> None:
    ring = CouncilKeyring(tmp_path / "keys")
    ring.generate("ES256", T0 - timedelta(days=1))
    enc, _ = generate_partner_keys("ec")
    recipient = PartnerKey.from_jwk("medway-ft", public_jwk(enc), use="enc")
    sealed = seal_notice(claims("medway-ft"), ring.active_signer(T0), recipient)
    signed = jose.decrypt_jwe(sealed.body, jose.import_private_jwk(enc))
    assert jose.read_header(signed, 3)["typ"] == NOTICE_TYP
    opened = open_notice(
        sealed.body,
        decryption_key=enc,
        council_jwks=ring.jwks(T0),
        expected_audience="medway-ft",
        expected_issuer="medway-council",
        now=T0,
    )
    assert opened == claims("medway-ft")
    with pytest.raises(EnvelopeError) as refused:
        open_envelope(
            sealed.body,
            decryption_key=enc,
            council_jwks=ring.jwks(T0),
            expected_audience="medway-ft",
            now=T0,
        )
    assert refused.value.code == "envelope_not_a_disclosure"
    with pytest.raises(EnvelopeError) as wrong:
        open_notice(
            sealed.body,
            decryption_key=enc,
            council_jwks=ring.jwks(T0),
            expected_audience="kent-police",
            now=T0,
        )
    assert wrong.value.code == "envelope_wrong_audience"


def test_a_notice_cannot_be_sealed_to_another_partners_key() -> None:
    enc, _ = generate_partner_keys("ec")
    recipient = PartnerKey.from_jwk("medway-ft", public_jwk(enc), use="enc")
    with pytest.raises(EnvelopeError):
        seal_notice(claims("kent-police"), None, recipient)  # type: ignore[arg-type]


def test_on_mesh_a_notice_travels_on_the_partners_notice_workflow() -> None:
    trust = CATALOG.partners["medway-ft"]
    agreement = CATALOG.agreements["KM-NHS-LAC-001"]
    target = notice_target(trust, agreement)
    assert target["workflow_id"] == trust.channel.notice_workflow_id
    assert target["workflow_id"] != trust.channel.workflow_id
    assert (
        MeshTarget.from_mapping(target, allow_insecure_loopback=False).workflow_id
        == target["workflow_id"]
    )
    # Without the agreement (gone from the catalog) it still goes, on the default workflow.
    bare = trust.model_copy(
        update={"channel": trust.channel.model_copy(update={"notice_workflow_id": None})}
    )
    assert notice_target(bare, None)["workflow_id"] == DEFAULT_NOTICE_WORKFLOW_ID
    webhook = CATALOG.partners["kent-police"]
    assert notice_target(webhook, None)["endpoint"] == webhook.channel.endpoint
    with pytest.raises(ValueError, match="MESH channels only"):
        ChannelSpec(type="webhook", endpoint="https://x.example/", notice_workflow_id="ABC_1")


def test_corrected_values_go_through_the_transform_the_partner_received() -> None:
    notice = PartnerNotice(
        partner="km-icb",
        partner_name="ICB",
        disclosure_ids=("d-1",),
        paths=("identity.date_of_birth", "identity.gender"),
        corrected_paths=("identity.date_of_birth", "identity.gender"),
        sent_under={
            "identity.date_of_birth": ("KM-ICB-COM-004", "commissioning"),
            "identity.gender": ("GONE-001", "commissioning"),
        },
    )
    values = corrected_values(
        notice,
        {"identity.date_of_birth": "2011-04-30", "identity.gender": "female"},
        CATALOG.agreements,
        pseudonym_key=b"k" * 32,
        today=T0,
    )
    assert values == {"identity.date_of_birth": "10-15"}  # an age band; nothing under GONE-001
