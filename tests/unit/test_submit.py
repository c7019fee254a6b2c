"""The submit use case against in-memory fakes: decisions become results, one write each."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agreements.loader import default_catalog_dir, load_catalog
from agreements.model import Agreement, Partner, Purpose
from agreements.samples import adult_record, child_record
from gateway.application.channel import Envelope
from gateway.application.commands import (
    AnnexBFacts,
    Conflict,
    Denied,
    Held,
    Queued,
    SubmitDisclosure,
    result_from_stored,
)
from gateway.application.submit import SubmissionInvalidError, SubmitDisclosures
from gateway.clients import Client
from gateway.jose import b64url_digest
from gateway.metrics import Metrics
from gateway.partner_keys import PartnerKey, generate_partner_keys, public_jwk
from gateway.protection import Protection
from gateway.sealing import EnvelopeClaims, SealedEnvelope, SignedDisclosure
from gateway.signed_at_rest import AT_REST_KID, open_held
from gateway.store.disclosures import AcceptedDisclosure
from gateway.store.idempotency import IdempotencyKeyReusedError
from gateway.store.submissions import Hold, KeptReply, PolicyRefusal, Write

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
CATALOG = load_catalog(default_catalog_dir())
EVERYTHING = Client("case-system", frozenset(CATALOG.agreements))


@dataclass
class FakeRecords:
    """The store side, in memory: written outcomes and kept replies."""

    opted_out_indexes: set[str] = field(default_factory=set)
    writes: list[Write] = field(default_factory=list)
    kept: dict[tuple[str, str], KeptReply] = field(default_factory=dict)

    async def opted_out(self, nhs_index: str) -> bool:
        return nhs_index in self.opted_out_indexes

    async def prior(self, client: str, key: str, request_hash: str) -> Mapping[str, Any] | None:
        found = self.kept.get((client, key))
        if found is None:
            return None
        if found.request_hash != request_hash:
            raise IdempotencyKeyReusedError("reused")
        return found.reply

    async def record(self, write: Write, keep: KeptReply | None) -> Mapping[str, Any] | None:
        if keep is not None:
            if (keep.client, keep.key) in self.kept:
                return self.kept[(keep.client, keep.key)].reply
            self.kept[(keep.client, keep.key)] = keep
        self.writes.append(write)
        return None


@dataclass
class FakeSealer:
    sealed: list[EnvelopeClaims] = field(default_factory=list)

    async def seal(self, claims: EnvelopeClaims, recipient: PartnerKey) -> SealedEnvelope:
        self.sealed.append(claims)
        return SealedEnvelope(b"jwe:" + claims.jti.encode(), "digest", "council-kid", recipient.kid)

    async def sign(self, claims: EnvelopeClaims) -> SignedDisclosure:
        self.sealed.append(claims)
        return SignedDisclosure(b"jws:" + claims.jti.encode(), "council-kid")


@dataclass(frozen=True)
class Snapshot:
    agreements: Mapping[str, Agreement]
    partners: Mapping[str, Partner]
    keys: Mapping[str, tuple[PartnerKey, ...]]


def _keys() -> dict[str, tuple[PartnerKey, ...]]:
    enc, _sig = generate_partner_keys("ec")
    return {
        partner: (
            PartnerKey.from_jwk(
                partner, public_jwk(enc), use="enc", not_before=NOW - timedelta(days=1)
            ),
        )
        for partner in CATALOG.partners
    }


KEYS = _keys()


@dataclass
class Rig:
    records: FakeRecords
    sealer: FakeSealer
    submit: SubmitDisclosures
    woken: list[int]
    protection: Protection


@pytest.fixture
def rig() -> Rig:
    records, sealer, woken = FakeRecords(), FakeSealer(), []
    protection = Protection(b"i" * 32, b"d" * 32)
    snapshot = Snapshot(CATALOG.agreements, CATALOG.partners, KEYS)
    submit = SubmitDisclosures(
        org_id="medway-council",
        records=records,
        policy=lambda: snapshot,
        sealer=sealer,
        protection=protection,
        metrics=Metrics(),
        clock=lambda: NOW,
        deliverable_channels=frozenset({"webhook", "mesh"}),
        on_accepted=lambda: woken.append(1),
    )
    return Rig(records, sealer, submit, woken, protection)


def lac(**changes: Any) -> SubmitDisclosure:
    values: dict[str, Any] = {
        "agreement": "KM-NHS-LAC-001",
        "purpose": "looked_after_children_health",
        "record": child_record(),
        "requested_by_user": "sw-0042",
        "requested_by_role": "social_worker",
        "reason": "Initial health assessment",
        "nhs_number": "9990000018",
        "local_id": "MC-C-000123",
    }
    values.update(changes)
    return SubmitDisclosure(**values)


async def test_an_allowed_disclosure_is_sealed_queued_and_written_once(rig: Rig) -> None:
    result = await rig.submit(EVERYTHING, lac())
    assert isinstance(result, Queued)
    [write] = rig.records.writes
    assert isinstance(write, AcceptedDisclosure)
    assert write.new.id == result.id
    assert write.envelope == b"jwe:" + result.id.encode()
    assert write.new.fields_sent  # minimised before sealing
    [claims] = rig.sealer.sealed
    partner = CATALOG.agreements["KM-NHS-LAC-001"].partner
    assert (claims.aud, claims.jti, claims.purpose) == (
        partner,
        result.id,
        "looked_after_children_health",
    )
    sent_tops = {path.split(".")[0].split("[")[0] for path in write.new.fields_sent}
    assert set(claims.data) | {"subject"} == sent_tops  # identifiers go in their own claim
    assert write.new.fields_removed  # the record carries more than the agreement allows
    assert rig.woken == [1]


async def test_a_refusal_is_recorded_with_every_reason_and_nothing_is_sealed(rig: Rig) -> None:
    narrow = Client("education", frozenset({"KM-DFE-CIN-011"}))
    result = await rig.submit(narrow, lac(purpose="research"))
    assert isinstance(result, Denied)
    assert set(result.reasons) >= {"client_not_authorised", "purpose_not_permitted"}
    [write] = rig.records.writes
    assert isinstance(write, PolicyRefusal)
    assert write.new.decision_reasons[: len(result.reasons)] == result.reasons
    assert rig.sealer.sealed == []
    assert rig.woken == []


async def test_a_police_request_is_held_in_the_internal_format(rig: Rig) -> None:
    facts = AnnexBFacts(
        requesting_officer="DC 1234",
        rank="Detective Constable",
        authorising_officer="DI 5678",
        offence_or_prejudice="Investigation of an offence",
        why_necessary="To locate a missing person",
        prejudice="Finding the missing person",
        data_requested=("current address",),
        requester_reference="MISPER-0001",
    )
    command = lac(
        agreement="KM-POL-S2-011",
        purpose="law_enforcement_request",
        record=adult_record(),
        annex_b=facts,
    )
    result = await rig.submit(EVERYTHING, command)
    assert isinstance(result, Held), result
    [write] = rig.records.writes
    assert isinstance(write, Hold)
    assert SubmitDisclosure.from_held(write.request) == command
    assert rig.sealer.sealed == []


async def test_a_partner_on_a_channel_nothing_here_delivers_over_is_refused(rig: Rig) -> None:
    email_agreements = [
        a.id
        for a in CATALOG.agreements.values()
        if str(CATALOG.partners[a.partner].channel.type) in ("email", "sftp")
    ]
    assert email_agreements  # the catalog has such partners, so the check means something
    agreement = CATALOG.agreements[email_agreements[0]]
    command = lac(agreement=agreement.id, purpose=str(sorted(agreement.purposes)[0]))
    result = await rig.submit(EVERYTHING, command)
    assert isinstance(result, Denied)
    assert "partner_channel_unavailable" in result.reasons


async def test_a_record_no_envelope_can_carry_is_refused_before_anything_is_written(
    rig: Rig,
) -> None:
    record = {**child_record(), "health": {"weight_kg": float("inf")}}
    with pytest.raises(SubmissionInvalidError, match=r"record\.health\.weight_kg"):
        await rig.submit(EVERYTHING, lac(record=record))
    assert rig.records.writes == []
    assert rig.sealer.sealed == []


async def test_a_retry_with_the_same_key_gets_the_first_result_and_writes_nothing(
    rig: Rig,
) -> None:
    first = await rig.submit(EVERYTHING, lac(), idempotency_key="k1", body_digest="abc")
    again = await rig.submit(EVERYTHING, lac(), idempotency_key="k1", body_digest="abc")
    assert again == first
    assert len(rig.records.writes) == 1


async def test_a_key_reused_with_another_body_is_a_conflict(rig: Rig) -> None:
    await rig.submit(EVERYTHING, lac(), idempotency_key="k2", body_digest="abc")
    result = await rig.submit(EVERYTHING, lac(), idempotency_key="k2", body_digest="xyz")
    assert result == Conflict("idempotency_key_reused")
    assert len(rig.records.writes) == 1


async def test_an_opted_out_subject_is_refused_where_the_opt_out_applies(rig: Rig) -> None:
    applies = [a for a in CATALOG.agreements.values() if str(a.national_data_opt_out) == "applies"]
    assert applies
    agreement = applies[0]
    rig.records.opted_out_indexes.add(rig.protection.blind_index("nhs_number", "9990000018"))
    command = lac(agreement=agreement.id, purpose=str(sorted(agreement.purposes)[0]))
    result = await rig.submit(EVERYTHING, command)
    assert isinstance(result, Denied)
    assert "national_data_opt_out" in result.reasons


async def test_the_opt_out_is_judged_by_the_request_purpose(rig: Rig) -> None:
    icb = CATALOG.agreements["KM-ICB-COM-004"]
    both = icb.model_copy(update={"purposes": (Purpose.DIRECT_CARE, Purpose.PLANNING)})
    snapshot = Snapshot({**CATALOG.agreements, icb.id: both}, CATALOG.partners, KEYS)
    submit = SubmitDisclosures(
        org_id="medway-council",
        records=rig.records,
        policy=lambda: snapshot,
        sealer=rig.sealer,
        protection=rig.protection,
        metrics=Metrics(),
        clock=lambda: NOW,
        deliverable_channels=frozenset({"webhook", "mesh"}),
    )
    rig.records.opted_out_indexes.add(rig.protection.blind_index("nhs_number", "9990000018"))
    planning = await submit(EVERYTHING, lac(agreement=icb.id, purpose="planning"))
    care = await submit(EVERYTHING, lac(agreement=icb.id, purpose="direct_care"))
    assert isinstance(planning, Denied)
    assert "national_data_opt_out" in planning.reasons
    assert isinstance(care, Queued), care


async def test_a_competent_authority_is_recorded_as_receiving_under_part_3(rig: Rig) -> None:
    mash = lac(agreement="KM-POL-SG-018", purpose="safeguarding_children")
    await rig.submit(EVERYTHING, mash)
    await rig.submit(EVERYTHING, lac())
    police, trust = (write.new.lawful_basis for write in rig.records.writes)
    assert police.endswith("; recipient dpa18 part3")
    assert "part3" not in trust


async def test_wrong_typed_values_are_refused_and_recorded_by_path(rig: Rig) -> None:
    record = child_record()
    record["identity"]["date_of_birth"] = "a diagnosis, not a date"
    result = await rig.submit(EVERYTHING, lac(record=record))
    assert isinstance(result, Queued)
    [write] = rig.records.writes
    assert isinstance(write, AcceptedDisclosure)
    assert write.new.fields_refused == (
        {"path": "identity.date_of_birth", "code": "type_mismatch"},
    )
    assert "identity.date_of_birth" in write.new.fields_removed
    [claims] = rig.sealer.sealed
    assert "date_of_birth" not in claims.data["identity"]


def test_held_requests_kept_by_earlier_versions_as_the_api_body_still_read() -> None:
    legacy = (
        b'{"agreement":"KM-POL-S2-011","purpose":"law_enforcement_request",'
        b'"subject":{"nhs_number":"9990000018","local_id":null},"record":{"a":1},'
        b'"requested_by":{"user":"u","role":"r"},"reason":"why","annex_b":null}'
    )
    command = SubmitDisclosure.from_held(legacy)
    assert (command.agreement, command.nhs_number, command.local_id) == (
        "KM-POL-S2-011",
        "9990000018",
        None,
    )
    assert command.requested_by_user == "u"


def test_replies_kept_by_earlier_versions_as_http_bodies_still_read() -> None:
    assert result_from_stored({"http_status": 202, "body": {"id": "d1", "status": "queued"}}) == (
        Queued("d1")
    )
    denied = {"http_status": 403, "body": {"id": "d2", "reasons": ["agreement_expired"]}}
    assert result_from_stored(denied) == Denied("d2", ("agreement_expired",))


async def test_an_email_partner_gets_the_signed_jwt_sealed_at_rest_without_a_jwk(rig: Rig) -> None:
    no_keys = Snapshot(CATALOG.agreements, CATALOG.partners, {})
    submit = SubmitDisclosures(
        org_id="medway-council",
        records=rig.records,
        policy=lambda: no_keys,
        sealer=rig.sealer,
        protection=rig.protection,
        metrics=Metrics(),
        clock=lambda: NOW,
        deliverable_channels=frozenset({"email"}),
    )
    mappa = lac(agreement="KM-PRB-016", purpose="crime_prevention", record=adult_record())
    result = await submit(EVERYTHING, mappa)
    assert isinstance(result, Queued), result
    [write] = rig.records.writes
    assert isinstance(write, AcceptedDisclosure)
    token = b"jws:" + result.id.encode()
    assert token not in write.envelope  # sealed under the data key, not stored as signed
    assert write.new.key_ids == ("council-kid", AT_REST_KID)
    assert write.digest == b64url_digest(token)  # what a TLS-only partner's receipt digests
    opened = open_held(Envelope(result.id, "probation-kss", write.envelope, "-"), rig.protection)
    assert (opened.body, opened.content_type) == (token, "application/jwt")
    webhook = await submit(EVERYTHING, lac())  # a partner on another channel still needs a key
    assert isinstance(webhook, Denied)
    assert "partner_key_missing" in webhook.reasons
