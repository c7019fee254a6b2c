"""Approving or rejecting a held disclosure (one-off agreements, police and DWP requests).

The held request is opened from its at-rest seal, decided again with the approval granted (the
agreement may have been suspended meanwhile), minimised and sealed exactly as the submit use
case does, and released to the outbox in one unit of work with the Annex B record; the held
copy is deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from agreements.decision import DecisionContext, DisclosureRequest, Outcome, decide
from agreements.minimise import minimise
from agreements.model import Agreement, Partner
from gateway.application.admin_ports import StorePort
from gateway.application.commands import SubmitDisclosure
from gateway.application.submit import FieldLists, PolicyView
from gateway.audit import Actor
from gateway.errors import GatewayError, NotFoundError
from gateway.partner_keys import PartnerKey, PartnerKeyError, encryption_key_for
from gateway.protection import Protection
from gateway.sealing import SealedEnvelope
from gateway.store import approvals, disclosures
from gateway.store.approvals import Approval
from gateway.store.disclosure_model import Disclosure, Status
from gateway.store.unit_of_work import Connection

SEALED_FACTS = ("offence_or_prejudice", "why_necessary")  # free text: may name people


class ApprovalRefusedError(GatewayError):
    """The held disclosure cannot be approved now (policy changed, key missing, not held)."""

    code = "approval_refused"


class PolicySource(Protocol):
    """The policy in force (`gateway.policy_cache.PolicyCache`)."""

    @property
    def snapshot(self) -> PolicyView: ...

    async def refresh(self) -> PolicyView: ...


class EnvelopeSealer(Protocol):
    """Minimises and seals for the partner as the submit use case does (`SubmitDisclosures`)."""

    async def seal_for(
        self,
        command: SubmitDisclosure,
        *,
        agreement: Agreement,
        partner: Partner,
        key: PartnerKey,
        disclosure_id: str,
        now: datetime,
    ) -> tuple[SealedEnvelope, FieldLists]: ...


class HeldRecords(Protocol):
    """Held disclosures and their moves (`gateway.store.disclosures`)."""

    async def get(self, conn: Connection, id_: str) -> Disclosure | None: ...

    async def held_request(self, conn: Connection, id_: str, protection: Protection) -> bytes: ...

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
        actor: Actor,
        at: datetime,
        fields_refused: Sequence[Mapping[str, str]] = (),
    ) -> None: ...

    async def transition(
        self,
        conn: Connection,
        id_: str,
        new_status: Status,
        *,
        event_type: str,
        actor: Actor,
        at: datetime,
        detail: Mapping[str, Any] | None = None,
        changes: Mapping[str, Any] | None = None,
    ) -> Status: ...


class DecisionRecords(Protocol):
    """Approvers' decisions (`gateway.store.approvals`)."""

    async def record(self, conn: Connection, approval: Approval) -> None: ...

    async def awaiting_decision(self, conn: Connection) -> list[Disclosure]: ...


@dataclass(frozen=True)
class HeldDisclosure:
    """What an approver sees: the metadata, the Annex B facts, what would be sent."""

    disclosure: Disclosure
    annex_b: dict[str, Any] | None
    reason: str
    would_send: tuple[str, ...]
    would_remove: tuple[str, ...]


class ApprovalDecisions:
    """The approver's use cases: what is held, one held disclosure, approve, reject."""

    def __init__(
        self,
        *,
        store: StorePort,
        policy: PolicySource,
        sealer: EnvelopeSealer,
        protection: Protection,
        clock: Callable[[], datetime],
        deliverable_channels: frozenset[str],
        held: HeldRecords = disclosures,
        decisions: DecisionRecords = approvals,
    ) -> None:
        self._store, self._policy, self._sealer = store, policy, sealer
        self._protection, self._clock, self._channels = protection, clock, deliverable_channels
        self._held_records, self._decisions = held, decisions

    async def pending(self) -> list[Disclosure]:
        """Every disclosure waiting for a decision, oldest first."""
        async with self._store.read() as conn:
            return await self._decisions.awaiting_decision(conn)

    async def show(self, disclosure_id: str) -> HeldDisclosure:
        """The held disclosure as an approver needs it (opened in memory only)."""
        found, sub = await self._held(disclosure_id)
        agreement = self._policy.snapshot.agreements.get(found.agreement_id)
        sent: tuple[str, ...] = ()
        removed: tuple[str, ...] = ()
        if agreement is not None:
            result = minimise(
                sub.record,
                agreement,
                sub.purpose,
                pseudonym_key=self._protection.pseudonym_key,
                today=self._clock().date(),
                subject=sub.subject,
            )
            sent, removed = result.sent, result.removed
        facts = dict(sub.annex_b) if sub.annex_b else None
        return HeldDisclosure(found, facts, sub.reason, sent, removed)

    async def approve(self, disclosure_id: str, *, actor: Actor, reason: str) -> Disclosure:
        """Approve: decide again with approval granted, seal, queue, delete the held copy."""
        snapshot = await self._policy.refresh()
        now = self._clock()
        found, sub = await self._held(disclosure_id)
        agreement = snapshot.agreements.get(found.agreement_id)
        partner = snapshot.partners.get(found.partner_id)
        try:
            key = encryption_key_for(snapshot.keys.get(found.partner_id, ()), found.partner_id, now)
        except PartnerKeyError:
            key = None
        request = DisclosureRequest(
            agreement_id=found.agreement_id,
            purpose=found.purpose,
            subject_identifiers=frozenset(sub.subject),
            has_approval_facts=sub.annex_b is not None,
            approval_granted=True,
        )
        context = DecisionContext(
            today=now.date(),
            client_agreements=frozenset({found.agreement_id}),
            partner_has_valid_key=key is not None,
            partner_channel=str(partner.channel.type) if partner else None,
            deliverable_channels=self._channels,
        )
        decision = decide(request, agreement, context)
        if decision.outcome is not Outcome.ALLOWED or agreement is None or partner is None:
            raise ApprovalRefusedError(
                "cannot approve now: " + ", ".join(decision.reasons or ("agreement_not_found",))
            )
        assert key is not None
        sealed, (sent, removed, refused) = await self._sealer.seal_for(
            sub, agreement=agreement, partner=partner, key=key, disclosure_id=found.id, now=now
        )
        approval = self._decision(found.id, sub, "approved", actor=actor, reason=reason, at=now)

        async def work(conn: Connection) -> Disclosure:
            await self._decisions.record(conn, approval)
            await self._held_records.release_approved(
                conn,
                found.id,
                envelope=sealed.body,
                digest=sealed.digest,
                approver=actor.name,
                fields_sent=sent,
                fields_removed=removed,
                key_ids=(sealed.signing_kid, sealed.encryption_kid),
                actor=actor,
                at=now,
                fields_refused=refused,
            )
            return await self._updated(conn, found.id)

        return await self._store.write(work)

    async def reject(self, disclosure_id: str, *, actor: Actor, reason: str) -> Disclosure:
        """Reject: record the decision, status rejected, held copy destroyed."""
        now = self._clock()
        found, sub = await self._held(disclosure_id)
        rejection = self._decision(found.id, sub, "rejected", actor=actor, reason=reason, at=now)

        async def work(conn: Connection) -> Disclosure:
            await self._decisions.record(conn, rejection)
            await self._held_records.transition(
                conn,
                found.id,
                Status.REJECTED,
                event_type="rejected",
                actor=actor,
                at=now,
                detail={"approver": actor.name},
                changes={"approver": actor.name},
            )
            return await self._updated(conn, found.id)

        return await self._store.write(work)

    async def _held(self, disclosure_id: str) -> tuple[Disclosure, SubmitDisclosure]:
        async with self._store.read() as conn:
            found = await self._held_records.get(conn, disclosure_id)
            if found is None:
                raise NotFoundError(f"no disclosure {disclosure_id}")
            if found.status is not Status.PENDING_APPROVAL:
                raise ApprovalRefusedError(
                    f"disclosure {disclosure_id} is {found.status}, not held"
                )
            raw = await self._held_records.held_request(conn, disclosure_id, self._protection)
        return found, SubmitDisclosure.from_held(raw)

    async def _updated(self, conn: Connection, disclosure_id: str) -> Disclosure:
        updated = await self._held_records.get(conn, disclosure_id)
        assert updated is not None
        return updated

    def _decision(
        self,
        disclosure_id: str,
        sub: SubmitDisclosure,
        decision: str,
        *,
        actor: Actor,
        reason: str,
        at: datetime,
    ) -> Approval:
        """The Annex B record of the decision, its free-text facts sealed at rest."""
        facts: dict[str, Any] = {}
        if sub.annex_b is not None:
            facts = {k: v for k, v in sub.annex_b.items() if v is not None}
            for name in SEALED_FACTS:
                if name in facts:
                    facts[name] = {"sealed": self._protection.seal_text(facts[name], disclosure_id)}
        return Approval(disclosure_id, facts, decision, actor.name, reason, at)
