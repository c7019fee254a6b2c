"""Approval decisions against in-memory fakes: decided again, sealed, released in one unit."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from agreements.loader import default_catalog_dir, load_catalog
from agreements.model import Agreement, AgreementStatus, Partner
from agreements.samples import adult_record
from gateway.application.approval_decisions import ApprovalDecisions, ApprovalRefusedError
from gateway.application.commands import SubmitDisclosure
from gateway.application.submit import FieldLists
from gateway.errors import NotFoundError
from gateway.partner_keys import PartnerKey, generate_partner_keys, public_jwk
from gateway.protection import Protection
from gateway.sealing import SealedEnvelope
from gateway.store.approvals import Approval
from gateway.store.disclosure_model import (
    Disclosure,
    IllegalTransitionError,
    Status,
    can_transition,
)
from gateway.store.unit_of_work import Connection
from tests.unit.admin_fakes import ADMIN, NOW, FakeStore

CATALOG = load_catalog(default_catalog_dir())
POLICE = "KM-POL-S2-011"
MARKER = "MARKER-free-text-9k2"
ANNEX_B = {
    "requesting_officer": "DC 1234 Example",
    "rank": "Detective Constable",
    "authorising_officer": "DI 5678 Example",
    "offence_or_prejudice": f"Burglary investigation (synthetic) {MARKER}",
    "why_necessary": "To trace a witness; no other source",
}
HELD = Disclosure(
    **dict.fromkeys(("id", "client", "lawful_basis", "reason", "requested_by_role"), ""),
    **dict.fromkeys(("fields_sent", "fields_removed", "decision_reasons", "key_ids"), ()),
    **dict.fromkeys(("retain_until", "created_at", "updated_at"), NOW),
    **dict.fromkeys(("approver", "digest", "envelope_purged_at", "next_attempt_at"), None),
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


class FakeSealer:
    async def seal_for(
        self,
        command: SubmitDisclosure,
        *,
        agreement: Agreement,
        partner: Partner,
        key: PartnerKey,
        disclosure_id: str,
        now: datetime,
    ) -> tuple[SealedEnvelope, FieldLists]:
        sealed = SealedEnvelope(b"jwe:" + disclosure_id.encode(), "digest", "council", key.kid)
        return sealed, (("identity.name",), ("household[*].name",), ())


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
        fields_refused: Sequence[Mapping[str, str]] = (),
    ) -> None:
        changes = {"approver": approver, "fields_sent": fields_sent, "key_ids": key_ids}
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
        moved = dataclasses.replace(current, status=new_status, **dict(changes or {}))
        self.rows["disclosures"][id_] = moved
        if new_status is Status.REJECTED:
            del self.rows["held"][id_]
        return current.status


@dataclass
class FakeDecisions:
    rows: list[Approval] = field(default_factory=list)
    held: FakeHeld | None = None

    async def record(self, conn: Connection, approval: Approval) -> None:
        self.rows.append(approval)

    async def awaiting_decision(self, conn: Connection) -> list[Disclosure]:
        assert self.held is not None
        found = self.held.rows["disclosures"].values()
        return [d for d in found if d.status is Status.PENDING_APPROVAL]


@dataclass
class Desk:
    held: FakeHeld
    decisions: FakeDecisions
    policy: FakePolicy
    protection: Protection
    approvals: ApprovalDecisions

    def hold(self, disclosure_id: str, **changes: Any) -> None:
        command = SubmitDisclosure(
            agreement=POLICE,
            purpose="law_enforcement_request",
            record=adult_record(),
            requested_by_user="sw-0099",
            requested_by_role="care_manager",
            reason="Police request",
            nhs_number="9990000026",
            annex_b=ANNEX_B,
        )
        held = dataclasses.replace(HELD, id=disclosure_id, **changes)
        self.held.rows["disclosures"][disclosure_id] = held
        sealed = self.protection.seal_at_rest(command.to_held(), disclosure_id.encode())
        self.held.rows["held"][disclosure_id] = sealed


@pytest.fixture
def desk() -> Desk:
    enc, _ = generate_partner_keys("ec")
    key = PartnerKey.from_jwk(
        "kent-police", public_jwk(enc), use="enc", not_before=NOW - timedelta(days=1)
    )
    policy = FakePolicy(Snapshot(CATALOG.agreements, CATALOG.partners, {"kent-police": (key,)}))
    held = FakeHeld()
    decisions = FakeDecisions(held=held)
    protection = Protection(b"i" * 32, b"d" * 32)
    approvals = ApprovalDecisions(
        store=FakeStore(held, decisions),
        policy=policy,
        sealer=FakeSealer(),
        protection=protection,
        clock=lambda: NOW,
        deliverable_channels=frozenset({"webhook", "mesh"}),
        held=held,
        decisions=decisions,
    )
    return Desk(held, decisions, policy, protection, approvals)


async def test_approve_seals_releases_and_records_the_annex_b_sealed(desk: Desk) -> None:
    desk.hold("d-1")
    [waiting] = await desk.approvals.pending()
    shown = await desk.approvals.show("d-1")
    assert (waiting.id, shown.annex_b, shown.reason) == ("d-1", ANNEX_B, "Police request")
    assert shown.would_send
    done = await desk.approvals.approve("d-1", actor=ADMIN, reason="Sch2 p2")
    assert (done.status, done.approver) == (Status.QUEUED, ADMIN.name)
    assert desk.policy.refreshed == 1  # decided on the policy in force now
    assert desk.held.rows["outbox"] == {"d-1": b"jwe:d-1"}
    assert desk.held.rows["held"] == {}
    [decision] = desk.decisions.rows
    assert (decision.decision, decision.actor, decision.reason) == (
        "approved",
        "ig.officer",
        "Sch2 p2",
    )
    assert decision.facts["rank"] == "Detective Constable"
    assert MARKER not in repr(decision.facts)  # free text sealed at rest
    assert set(decision.facts["offence_or_prejudice"]) == {"sealed"}
    assert await desk.approvals.pending() == []


async def test_reject_records_and_destroys_the_held_copy(desk: Desk) -> None:
    desk.hold("d-2")
    done = await desk.approvals.reject("d-2", actor=ADMIN, reason="not necessary")
    assert (done.status, done.approver) == (Status.REJECTED, ADMIN.name)
    assert desk.held.rows["held"] == {}
    assert desk.held.rows["outbox"] == {}
    assert [d.decision for d in desk.decisions.rows] == ["rejected"]
    with pytest.raises(ApprovalRefusedError, match="not held"):
        await desk.approvals.approve("d-2", actor=ADMIN, reason="again")
    with pytest.raises(NotFoundError):
        await desk.approvals.reject("no-such", actor=ADMIN, reason="x")


async def test_approval_is_refused_when_the_policy_changed_meanwhile(desk: Desk) -> None:
    desk.hold("d-3")
    suspended = CATALOG.agreements[POLICE].model_copy(update={"status": AgreementStatus.SUSPENDED})
    agreements = {**CATALOG.agreements, POLICE: suspended}
    desk.policy.snapshot = dataclasses.replace(desk.policy.snapshot, agreements=agreements)
    with pytest.raises(ApprovalRefusedError, match="agreement_not_active"):
        await desk.approvals.approve("d-3", actor=ADMIN, reason="ok")
    desk.policy.snapshot = dataclasses.replace(
        desk.policy.snapshot, agreements=CATALOG.agreements, keys={}
    )
    with pytest.raises(ApprovalRefusedError, match="partner_key_missing"):
        await desk.approvals.approve("d-3", actor=ADMIN, reason="ok")
    assert desk.decisions.rows == []
    assert desk.held.rows["disclosures"]["d-3"].status is Status.PENDING_APPROVAL
