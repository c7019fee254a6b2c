"""Approval decisions against in-memory fakes: four eyes, decided again, narrowed, recorded."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from agreements.loader import default_catalog_dir, load_catalog
from agreements.model import Agreement, AgreementStatus, ApprovalPolicy, Partner
from agreements.samples import adult_record
from gateway.application.annex_b import AnnexBNotFoundError
from gateway.application.approval_decisions import ApprovalDecisions, ApprovalRefusedError
from gateway.application.commands import AnnexBFacts, SubmitDisclosure
from gateway.application.four_eyes import (
    ApproverIdentity,
    ApproverIsRequesterError,
    ApproverNotForAgreementError,
    ApproverNotRegisteredError,
    FieldsNotPermittedError,
)
from gateway.application.submit import FieldLists
from gateway.errors import NotFoundError
from gateway.partner_keys import PartnerKey, generate_partner_keys, public_jwk
from gateway.protection import Protection
from gateway.sealing import SealedEnvelope
from gateway.store.approvals import Approval
from gateway.store.approvers_repo import StoredApprover
from gateway.store.clients_repo import StoredClient
from gateway.store.disclosure_model import (
    Disclosure,
    IllegalTransitionError,
    Status,
    can_transition,
)
from gateway.store.unit_of_work import Connection
from tests.unit.admin_fakes import NOW, FakeAuditTrail, FakeStore

CATALOG = load_catalog(default_catalog_dir())
POLICE = "KM-POL-S2-011"
COMMISSIONING = "KM-ICB-COM-004"  # national data opt-out: applies
MARKER = "MARKER-free-text-9k2"
FACTS = AnnexBFacts(
    requesting_officer="DC 1234 Example",
    rank="Detective Constable",
    authorising_officer="DI 5678 Example",
    offence_or_prejudice=f"Burglary investigation (synthetic) {MARKER}",
    why_necessary="To trace a witness; no other source",
    prejudice="Detection of the offence",
    data_requested=("current address", f"phone {MARKER}"),
    requester_reference="46/00000/26",
)
ANNEX_B = FACTS.to_dict()
GUARDIAN = ApproverIdentity("CG-0001", login="jsmith")
NHS_NUMBER = "9990000026"
HELD = Disclosure(
    **dict.fromkeys(("id", "lawful_basis", "reason", "requested_by_role"), ""),
    **dict.fromkeys(("fields_sent", "fields_removed", "decision_reasons", "key_ids"), ()),
    **dict.fromkeys(("retain_until", "created_at", "updated_at"), NOW),
    **dict.fromkeys(("approver", "digest", "envelope_purged_at", "next_attempt_at"), None),
    client="case-system",
    agreement_id=POLICE,
    agreement_version=1,
    partner_id="kent-police",
    purpose="law_enforcement_request",
    status=Status.PENDING_APPROVAL,
    requested_by_user="sw-0099",
    attempts=0,
)


@dataclass(frozen=True)
class Snapshot:
    agreements: Mapping[str, Agreement]
    partners: Mapping[str, Partner]
    keys: Mapping[str, tuple[PartnerKey, ...]]


@dataclass
class FakePolicy:
    snapshot: Snapshot
    refreshed: int = 0

    async def refresh(self) -> Snapshot:
        self.refreshed += 1
        return self.snapshot


@dataclass
class FakeSealer:
    agreements: list[Agreement] = field(default_factory=list)
    envelope_lifetime: timedelta = timedelta(days=30)

    async def seal_for(
        self,
        command: SubmitDisclosure,
        *,
        agreement: Agreement,
        partner: Partner,
        key: PartnerKey | None,
        disclosure_id: str,
        now: datetime,
    ) -> tuple[SealedEnvelope, FieldLists]:
        self.agreements.append(agreement)
        kid = key.kid if key is not None else "council-at-rest"  # email: no partner key
        sealed = SealedEnvelope(b"jwe:" + disclosure_id.encode(), "digest", "council", kid)
        return sealed, (tuple(agreement.rules_for(command.purpose)), ("household[*].name",), ())


@dataclass
class FakeHeld:
    """Disclosures by id, the held requests, and the envelopes released to the outbox."""

    rows: dict[str, Any] = field(
        default_factory=lambda: {"disclosures": {}, "held": {}, "outbox": {}}
    )

    async def get(self, conn: Connection, id_: str) -> Disclosure | None:
        found: Disclosure | None = self.rows["disclosures"].get(id_)
        return found

    async def held_request(self, conn: Connection, id_: str, protection: Protection) -> bytes:
        sealed: bytes = self.rows["held"][id_]
        return protection.open_at_rest(sealed, id_.encode())

    async def release_approved(
        self,
        conn: Connection,
        id_: str,
        *,
        envelope: bytes,
        digest: str,
        approver: str,
        fields_sent: tuple[str, ...],
        fields_removed: tuple[str, ...],
        key_ids: tuple[str, ...],
        actor: Any,
        at: datetime,
        expires_at: datetime | None = None,
        fields_refused: Sequence[Mapping[str, str]] = (),
    ) -> None:
        changes = {
            "approver": approver,
            "fields_sent": fields_sent,
            "key_ids": key_ids,
            "expires_at": expires_at,
        }
        await self.transition(
            conn, id_, Status.QUEUED, event_type="approved", actor=actor, at=at, changes=changes
        )
        self.rows["outbox"][id_] = envelope
        del self.rows["held"][id_]

    async def transition(
        self,
        conn: Connection,
        id_: str,
        new_status: Status,
        *,
        event_type: str,
        actor: Any,
        at: datetime,
        detail: Mapping[str, Any] | None = None,
        changes: Mapping[str, Any] | None = None,
    ) -> Status:
        current: Disclosure = self.rows["disclosures"][id_]
        if not can_transition(current.status, new_status):
            raise IllegalTransitionError(f"{current.status} -> {new_status}")
        # As the store reads them back: JSON lists become tuples.
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in (changes or {}).items()}
        moved = dataclasses.replace(current, status=new_status, **values)
        self.rows["disclosures"][id_] = moved
        if new_status in (Status.REJECTED, Status.DENIED):
            del self.rows["held"][id_]
        return current.status


@dataclass
class FakeDecisions:
    rows: list[Approval] = field(default_factory=list)
    held: FakeHeld | None = None

    async def record(self, conn: Connection, approval: Approval) -> None:
        self.rows.append(approval)

    async def for_disclosure(self, conn: Connection, disclosure_id: str) -> list[Approval]:
        return [row for row in self.rows if row.disclosure_id == disclosure_id]

    async def awaiting_decision(self, conn: Connection) -> list[Disclosure]:
        assert self.held is not None
        found = self.held.rows["disclosures"].values()
        return [d for d in found if d.status is Status.PENDING_APPROVAL]


@dataclass
class FakeApprovers:
    rows: dict[str, StoredApprover] = field(default_factory=dict)

    def register(self, name: str, *agreements: str, role: str | None = None) -> None:
        key = name.strip().casefold()
        self.rows[key] = StoredApprover(key, name, role, frozenset(agreements), "ig", NOW)

    async def get(self, conn: Connection, name_key: str) -> StoredApprover | None:
        return self.rows.get(name_key)


@dataclass
class FakeClients:
    rows: dict[str, StoredClient] = field(
        default_factory=lambda: {
            "case-system": StoredClient(
                "case-system", frozenset(CATALOG.agreements), "active", NOW, None
            )
        }
    )

    async def get(self, conn: Connection, name: str) -> StoredClient | None:
        return self.rows.get(name)


@dataclass
class FakeOptOuts:
    rows: set[str] = field(default_factory=set)

    async def is_opted_out(self, conn: Connection, nhs_index: str) -> bool:
        return nhs_index in self.rows


@dataclass
class Desk:
    held: FakeHeld
    decisions: FakeDecisions
    policy: FakePolicy
    protection: Protection
    approvals: ApprovalDecisions
    approvers: FakeApprovers
    clients: FakeClients
    opt_outs: FakeOptOuts
    audit: FakeAuditTrail
    sealer: FakeSealer

    def hold(self, disclosure_id: str, *, raw: bytes | None = None, **changes: Any) -> None:
        held = dataclasses.replace(HELD, id=disclosure_id, **changes)
        command = SubmitDisclosure(
            agreement=held.agreement_id,
            purpose=held.purpose,
            record=adult_record(),
            requested_by_user="sw-0099",
            requested_by_role="care_manager",
            reason="Police request",
            nhs_number=NHS_NUMBER,
            annex_b=FACTS,
        )
        self.held.rows["disclosures"][disclosure_id] = held
        sealed = self.protection.seal_at_rest(raw or command.to_held(), disclosure_id.encode())
        self.held.rows["held"][disclosure_id] = sealed

    def nothing_changed(self, disclosure_id: str) -> None:
        assert self.held.rows["disclosures"][disclosure_id].status is Status.PENDING_APPROVAL
        assert disclosure_id in self.held.rows["held"]
        assert self.held.rows["outbox"] == {}
        assert self.decisions.rows == []


@pytest.fixture
def desk() -> Desk:
    enc, _ = generate_partner_keys("ec")
    keys = {
        partner: (
            PartnerKey.from_jwk(
                partner, public_jwk(enc), use="enc", not_before=NOW - timedelta(days=1)
            ),
        )
        for partner in ("kent-police", CATALOG.agreements[COMMISSIONING].partner)
    }
    policy = FakePolicy(Snapshot(CATALOG.agreements, CATALOG.partners, keys))
    held = FakeHeld()
    decisions = FakeDecisions(held=held)
    approvers, clients, opt_outs = FakeApprovers(), FakeClients(), FakeOptOuts()
    approvers.register("CG-0001", POLICE, COMMISSIONING, role="caldicott_guardian")
    audit = FakeAuditTrail()
    protection = Protection(b"i" * 32, b"d" * 32)
    sealer = FakeSealer()
    approvals = ApprovalDecisions(
        store=FakeStore(held, decisions, audit),
        policy=policy,
        sealer=sealer,
        protection=protection,
        clock=lambda: NOW,
        deliverable_channels=frozenset({"webhook", "mesh", "email"}),
        held=held,
        decisions=decisions,
        approvers=approvers,
        clients=clients,
        opt_outs=opt_outs,
        audit_entry=audit,
    )
    return Desk(
        held, decisions, policy, protection, approvals, approvers, clients, opt_outs, audit, sealer
    )


async def test_approve_seals_releases_and_records_the_annex_b_sealed(desk: Desk) -> None:
    desk.hold("d-1")
    [waiting] = await desk.approvals.pending()
    shown = await desk.approvals.show("d-1")
    assert (waiting.id, shown.annex_b, shown.reason) == ("d-1", ANNEX_B, "Police request")
    assert shown.would_send
    done = await desk.approvals.approve("d-1", approver=GUARDIAN, reason="Sch2 p2")
    assert (done.status, done.approver) == (Status.QUEUED, "CG-0001")
    assert desk.policy.refreshed == 1  # decided on the policy in force now
    assert desk.held.rows["outbox"] == {"d-1": b"jwe:d-1"}
    assert desk.held.rows["held"] == {}
    [decision] = desk.decisions.rows
    assert (decision.decision, decision.actor, decision.reason, decision.login) == (
        "approved",
        "CG-0001",
        "Sch2 p2",
        "jsmith",
    )
    assert (decision.role, decision.fields_granted) == ("caldicott_guardian", None)
    assert decision.facts["rank"] == "Detective Constable"
    assert decision.facts["requester_reference"] == "46/00000/26"
    assert MARKER not in repr(decision.facts)  # free text sealed at rest
    for name in ("offence_or_prejudice", "prejudice", "why_necessary"):
        assert set(decision.facts[name]) == {"sealed"}
    assert set(decision.facts["data_requested"]) == {"sealed_json"}
    [entry] = desk.audit.rows
    assert (entry.action, entry.actor.name, entry.details["login"]) == (
        "approval.approved",
        "CG-0001",
        "jsmith",
    )
    assert await desk.approvals.pending() == []


async def test_reject_records_and_destroys_the_held_copy(desk: Desk) -> None:
    desk.hold("d-2")
    done = await desk.approvals.reject("d-2", approver=GUARDIAN, reason="not necessary")
    assert (done.status, done.approver) == (Status.REJECTED, "CG-0001")
    assert desk.held.rows["held"] == {}
    assert desk.held.rows["outbox"] == {}
    assert [d.decision for d in desk.decisions.rows] == ["rejected"]
    assert desk.audit.actions == ["approval.rejected"]
    with pytest.raises(ApprovalRefusedError, match="not held"):
        await desk.approvals.approve("d-2", approver=GUARDIAN, reason="again")
    with pytest.raises(NotFoundError):
        await desk.approvals.reject("no-such", approver=GUARDIAN, reason="x")


@pytest.mark.parametrize("decide", ["approve", "reject"])
async def test_the_requester_may_not_decide_their_own_request(desk: Desk, decide: str) -> None:
    desk.approvers.register("SW-0099", POLICE)  # registered, but the requester
    desk.hold("d-self")
    requester = ApproverIdentity("  Sw-0099 ", login="sw")  # trimmed, case-insensitive
    with pytest.raises(ApproverIsRequesterError, match="four eyes") as refused:
        await getattr(desk.approvals, decide)("d-self", approver=requester, reason="mine")
    assert refused.value.code == "approver_is_requester"
    desk.nothing_changed("d-self")
    [entry] = desk.audit.rows
    assert entry.action == "approval.refused"
    assert entry.details == {"code": "approver_is_requester", "attempted": decide, "login": "sw"}
    assert entry.targets == {"disclosure": "d-self", "agreement": POLICE}


async def test_an_unregistered_approver_is_refused(desk: Desk) -> None:
    desk.hold("d-unreg")
    stranger = ApproverIdentity("ig-0404", login="someone")
    with pytest.raises(ApproverNotRegisteredError):
        await desk.approvals.approve("d-unreg", approver=stranger, reason="ok")
    with pytest.raises(ApproverNotRegisteredError):
        await desk.approvals.reject("d-unreg", approver=stranger, reason="no")
    desk.nothing_changed("d-unreg")
    assert [e.details["code"] for e in desk.audit.rows] == ["approver_not_registered"] * 2


async def test_an_approver_registered_for_another_agreement_is_refused(desk: Desk) -> None:
    desk.approvers.register("dpo-0002", "KM-DWP-FR-012", role="dpo")
    desk.hold("d-other")
    other = ApproverIdentity("DPO-0002", login="dpo")
    with pytest.raises(ApproverNotForAgreementError, match=POLICE):
        await desk.approvals.approve("d-other", approver=other, reason="ok")
    desk.nothing_changed("d-other")
    assert desk.audit.rows[0].details["code"] == "approver_not_for_agreement"


async def test_approval_after_the_policy_changed_leaves_it_denied(desk: Desk) -> None:
    desk.hold("d-3")
    desk.hold("d-4")
    suspended = CATALOG.agreements[POLICE].model_copy(update={"status": AgreementStatus.SUSPENDED})
    agreements = {**CATALOG.agreements, POLICE: suspended}
    desk.policy.snapshot = dataclasses.replace(desk.policy.snapshot, agreements=agreements)
    done = await desk.approvals.approve("d-3", approver=GUARDIAN, reason="ok")
    assert (done.status, done.decision_reasons) == (Status.DENIED, ("agreement_not_active",))
    desk.policy.snapshot = dataclasses.replace(
        desk.policy.snapshot, agreements=CATALOG.agreements, keys={}
    )
    done = await desk.approvals.approve("d-4", approver=GUARDIAN, reason="ok")
    assert (done.status, done.decision_reasons) == (Status.DENIED, ("partner_key_missing",))
    assert [d.decision for d in desk.decisions.rows] == ["denied", "denied"]
    assert desk.held.rows["held"] == {}  # decided for good: the held copies are destroyed
    assert desk.held.rows["outbox"] == {}
    assert desk.audit.actions == ["approval.denied", "approval.denied"]
    assert desk.audit.rows[1].details["reasons"] == ["partner_key_missing"]


async def test_approval_after_the_client_was_revoked_leaves_it_denied(desk: Desk) -> None:
    desk.hold("d-rev")
    revoked = dataclasses.replace(desk.clients.rows["case-system"], status="revoked")
    desk.clients.rows["case-system"] = revoked
    done = await desk.approvals.approve("d-rev", approver=GUARDIAN, reason="ok")
    assert (done.status, done.decision_reasons) == (Status.DENIED, ("client_not_authorised",))
    assert desk.held.rows["outbox"] == {}
    assert desk.sealer.agreements == []  # nothing was sealed


async def test_approval_after_an_opt_out_where_it_applies_leaves_it_denied(desk: Desk) -> None:
    held_for_approval = CATALOG.agreements[COMMISSIONING].model_copy(
        update={"approval": ApprovalPolicy.REQUIRED}
    )
    agreements = {**CATALOG.agreements, COMMISSIONING: held_for_approval}
    desk.policy.snapshot = dataclasses.replace(desk.policy.snapshot, agreements=agreements)
    partner = held_for_approval.partner
    desk.hold("d-ndoo", agreement_id=COMMISSIONING, partner_id=partner, purpose="commissioning")
    desk.hold("d-police")  # the opt-out does not apply to a police request
    desk.opt_outs.rows.add(desk.protection.blind_index("nhs_number", NHS_NUMBER))
    done = await desk.approvals.approve("d-ndoo", approver=GUARDIAN, reason="ok")
    assert (done.status, done.decision_reasons) == (Status.DENIED, ("national_data_opt_out",))
    police = await desk.approvals.approve("d-police", approver=GUARDIAN, reason="ok")
    assert police.status is Status.QUEUED


async def test_the_approver_may_narrow_the_fields_to_part_of_the_allowlist(desk: Desk) -> None:
    desk.hold("d-narrow")
    desk.hold("d-wide")
    outside = ["identity.name", "health.diagnoses[*].code"]
    with pytest.raises(FieldsNotPermittedError, match=r"health\.diagnoses"):
        await desk.approvals.approve("d-wide", approver=GUARDIAN, reason="ok", fields=outside)
    assert desk.audit.rows[0].details["code"] == "fields_not_permitted"
    chosen = [" identity.name", "identity.address.postcode ", "identity.name"]
    done = await desk.approvals.approve("d-narrow", approver=GUARDIAN, reason="ok", fields=chosen)
    expected = ("identity.name", "identity.address.postcode")
    assert done.status is Status.QUEUED
    assert set(done.fields_sent) == set(expected)
    [sealed_under] = desk.sealer.agreements
    assert {rule.path for rule in sealed_under.fields} == set(expected)
    [decision] = desk.decisions.rows
    assert decision.fields_granted == expected
    assert desk.audit.rows[-1].details["fields_granted"] == list(expected)
    assert desk.held.rows["disclosures"]["d-wide"].status is Status.PENDING_APPROVAL


def _v1_held_request(annex_b: dict[str, Any] | None) -> bytes:
    """A request held by the version before Annex B asked for prejudice and data requested."""
    return orjson.dumps(
        {
            "v": 1,
            "agreement": POLICE,
            "purpose": "law_enforcement_request",
            "subject": {"nhs_number": NHS_NUMBER},
            "record": adult_record(),
            "requested_by": {"user": "sw-0099", "role": "care_manager"},
            "reason": "Police request",
            "annex_b": annex_b,
        }
    )


async def test_requests_held_by_earlier_versions_still_approve(desk: Desk) -> None:
    old_facts = {
        name: ANNEX_B[name]
        for name in (
            "requesting_officer",
            "rank",
            "authorising_officer",
            "offence_or_prejudice",
            "why_necessary",
        )
    }
    desk.hold("d-v1", raw=_v1_held_request({**old_facts, "reference": None}))
    unversioned = orjson.loads(_v1_held_request(old_facts))
    del unversioned["v"]
    desk.hold("d-v0", raw=orjson.dumps(unversioned))
    record = await desk.approvals.annex_b("d-v1")
    assert record.facts["prejudice"] is None
    assert record.facts["data_requested"] == []
    for disclosure_id in ("d-v1", "d-v0"):
        done = await desk.approvals.approve(disclosure_id, approver=GUARDIAN, reason="ok")
        assert done.status is Status.QUEUED
    assert "prejudice" not in desk.decisions.rows[0].facts


async def test_the_annex_b_record_shows_the_facts_the_decision_who_when_why(desk: Desk) -> None:
    desk.hold("d-b")
    pending = await desk.approvals.annex_b("d-b")
    assert (pending.decision, pending.facts, pending.approver) == ("pending", ANNEX_B, None)
    await desk.approvals.approve(
        "d-b", approver=GUARDIAN, reason="Sch2 p2", fields=["identity.name"]
    )
    record = await desk.approvals.annex_b("d-b")
    assert record.facts == {k: v for k, v in ANNEX_B.items() if v is not None}  # opened
    assert (record.decision, record.approver, record.role, record.login) == (
        "approved",
        "CG-0001",
        "caldicott_guardian",
        "jsmith",
    )
    assert (record.decided_at, record.reason, record.fields_granted) == (
        NOW,
        "Sch2 p2",
        ("identity.name",),
    )
    desk.held.rows["disclosures"]["d-x"] = dataclasses.replace(HELD, id="d-x", status=Status.QUEUED)
    with pytest.raises(AnnexBNotFoundError):
        await desk.approvals.annex_b("d-x")


async def test_an_email_partner_is_released_without_a_jwk(desk: Desk) -> None:
    dwp = CATALOG.agreements["KM-DWP-FR-012"]
    desk.approvers.register("CG-0001", POLICE, dwp.id, role="caldicott_guardian")
    command = SubmitDisclosure(
        agreement=dwp.id,
        purpose="fraud_prevention",
        record=adult_record(),
        requested_by_user="sw-0099",
        requested_by_role="care_manager",
        reason="DWP request",
        local_id="MC-A-000456",
        annex_b=FACTS,
    )
    desk.hold(
        "d-9",
        raw=command.to_held(),
        agreement_id=dwp.id,
        agreement_version=dwp.version,
        partner_id=dwp.partner,
        purpose="fraud_prevention",
    )
    assert dwp.partner not in desk.policy.snapshot.keys  # the partner registered no JWK
    done = await desk.approvals.approve("d-9", approver=GUARDIAN, reason="Sch2 p2")
    assert done.status is Status.QUEUED, done.decision_reasons
    assert desk.held.rows["outbox"] == {"d-9": b"jwe:d-9"}
