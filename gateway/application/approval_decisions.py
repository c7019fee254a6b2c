"""Approving or rejecting a held disclosure (one-off agreements, police and DWP requests).

Only a registered approver for the agreement decides, never the requester (`four_eyes`); a
refused attempt changes nothing and is audited. Approval re-runs the whole decision on the policy,
client, opt-out list and keys in force at that moment: a refusal leaves the disclosure `denied`
with the policy's reasons. Otherwise the request is minimised (to the approver's narrowing, if
any) and sealed exactly as the submit use case does, and released to the outbox in one unit of
work with the Annex B record; the held copy is deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from agreements.decision import DisclosureRequest, decide
from agreements.dictionary import recordable_paths
from agreements.minimise import minimise
from gateway.application.admin_ports import AuditTrail, StorePort, chained_entry
from gateway.application.annex_b import AnnexBRecord, annex_b_record, facts_for_record
from gateway.application.approval_checks import ApprovalChecks, encryption_key
from gateway.application.approval_ports import (
    ApproverLookup,
    ClientLookup,
    DecisionRecords,
    EnvelopeSealer,
    HeldDisclosure,
    HeldRecords,
    OptOutLookup,
    PolicySource,
)
from gateway.application.commands import SubmitDisclosure
from gateway.application.four_eyes import (
    ApproverIdentity,
    DecisionRefusedError,
    granted_fields,
    narrowed,
)
from gateway.audit import Actor, ActorKind
from gateway.errors import GatewayError, NotFoundError
from gateway.protection import Protection
from gateway.sealing import SealedEnvelope
from gateway.store import approvals, approvers_repo, clients_repo, disclosures, optouts
from gateway.store.approvals import Approval
from gateway.store.approvers_repo import StoredApprover
from gateway.store.disclosure_model import Disclosure, Status
from gateway.store.unit_of_work import Connection

__all__ = ["ApprovalDecisions", "ApprovalRefusedError", "HeldDisclosure"]


class ApprovalRefusedError(GatewayError):
    """The disclosure is not held for a decision (decided already, or never held)."""

    code = "approval_refused"


class ApprovalDecisions:
    """The approver's use cases: what is held, one held disclosure, approve, reject, Annex B."""

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
        approvers: ApproverLookup = approvers_repo,
        clients: ClientLookup = clients_repo,
        opt_outs: OptOutLookup = optouts,
        audit_entry: AuditTrail = chained_entry,
    ) -> None:
        self._store, self._policy, self._sealer = store, policy, sealer
        self._protection, self._clock, self._channels = protection, clock, deliverable_channels
        self._held_records, self._decisions = held, decisions
        self._audit = audit_entry
        self._checks = ApprovalChecks(
            store=store,
            protection=protection,
            deliverable_channels=deliverable_channels,
            approvers=approvers,
            clients=clients,
            opt_outs=opt_outs,
            audit_entry=audit_entry,
        )

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
        facts = sub.annex_b.to_dict() if sub.annex_b else None
        return HeldDisclosure(found, facts, sub.reason, sent, removed)

    async def annex_b(self, disclosure_id: str) -> AnnexBRecord:
        """The Annex B record: the facts, the decision, who, when, why (opened in memory)."""
        async with self._store.read() as conn:
            found = await self._held_records.get(conn, disclosure_id)
            if found is None:
                raise NotFoundError(f"no disclosure {disclosure_id}")
            recorded = await self._decisions.for_disclosure(conn, disclosure_id)
            held = None
            if found.status is Status.PENDING_APPROVAL:
                raw = await self._held_records.held_request(conn, disclosure_id, self._protection)
                held = SubmitDisclosure.from_held(raw).annex_b
        return annex_b_record(found, recorded, held, self._protection)

    async def approve(
        self,
        disclosure_id: str,
        *,
        approver: ApproverIdentity,
        reason: str,
        fields: Sequence[str] | None = None,
    ) -> Disclosure:
        """Approve: decide again now; seal (narrowed), queue, or leave it denied by policy."""
        snapshot = await self._policy.refresh()
        now = self._clock()
        found, sub = await self._held(disclosure_id)
        registered = await self._checks.authorised(found, approver, "approve", now)
        agreement = snapshot.agreements.get(found.agreement_id)
        granted = None
        if fields is not None and agreement is not None:
            chosen = granted_fields(fields, agreement.rules_for(found.purpose))
            if isinstance(chosen, DecisionRefusedError):
                await self._checks.refuse(found, approver, chosen, "approve", now)
            granted = chosen
        record = self._record(
            sub,
            disclosure_id=found.id,
            registered=registered,
            approver=approver,
            reason=reason,
            at=now,
            granted=granted,
        )
        partner = snapshot.partners.get(found.partner_id)
        key = encryption_key(snapshot, found.partner_id, now)
        decision = decide(
            DisclosureRequest(
                agreement_id=found.agreement_id,
                purpose=found.purpose,
                subject_identifiers=frozenset(sub.subject),
                has_approval_facts=sub.annex_b is not None,
                approval_granted=True,
            ),
            agreement,
            await self._checks.context_now(
                found, sub, agreement=agreement, partner=partner, key=key, now=now
            ),
        )
        if not decision.allowed or agreement is None or partner is None:
            return await self._deny(found, record("denied"), decision.reasons)
        sealed, (sent, every_removed, refused) = await self._sealer.seal_for(
            sub,
            agreement=agreement if granted is None else narrowed(agreement, granted),
            partner=partner,
            key=key,
            disclosure_id=found.id,
            now=now,
        )
        removed, _unknown = recordable_paths(every_removed)
        return await self._release(
            found, record("approved"), sealed, sent, removed, refused=refused
        )

    async def reject(
        self, disclosure_id: str, *, approver: ApproverIdentity, reason: str
    ) -> Disclosure:
        """Reject: record the decision, status rejected, held copy destroyed."""
        now = self._clock()
        found, sub = await self._held(disclosure_id)
        registered = await self._checks.authorised(found, approver, "reject", now)
        rejection = self._record(
            sub,
            disclosure_id=found.id,
            registered=registered,
            approver=approver,
            reason=reason,
            at=now,
        )("rejected")
        return await self._close(
            found, rejection, Status.REJECTED, detail={"approver": registered.name}, changes={}
        )

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

    async def _release(
        self,
        found: Disclosure,
        approval: Approval,
        sealed: SealedEnvelope,
        sent: tuple[str, ...],
        removed: tuple[str, ...],
        *,
        refused: Sequence[Mapping[str, str]] = (),
    ) -> Disclosure:
        """Queue the sealed envelope with the decision; the held copy is destroyed."""

        async def work(conn: Connection) -> Disclosure:
            await self._decisions.record(conn, approval)
            await self._held_records.release_approved(
                conn,
                found.id,
                envelope=sealed.body,
                digest=sealed.digest,
                approver=approval.actor,
                fields_sent=sent,
                fields_removed=removed,
                key_ids=(sealed.signing_kid, sealed.encryption_kid),
                actor=Actor(ActorKind.ADMIN, approval.actor),
                at=approval.decided_at,
                expires_at=approval.decided_at + self._sealer.envelope_lifetime,
                fields_refused=refused,
            )
            await self._decided(conn, approval, found)
            return await self._updated(conn, found.id)

        return await self._store.write(work)

    async def _deny(
        self, found: Disclosure, denial: Approval, reasons: tuple[str, ...]
    ) -> Disclosure:
        """Approved, but refused by the decision re-run: denied with the policy's reasons."""
        reasons = reasons or ("agreement_not_found",)
        detail = {"reasons": list(reasons), "approver": denial.actor}
        changes = {"approver": denial.actor, "decision_reasons": list(reasons)}
        return await self._close(
            found, denial, Status.DENIED, detail=detail, changes=changes, reasons=reasons
        )

    async def _close(
        self,
        found: Disclosure,
        decision: Approval,
        status: Status,
        *,
        detail: Mapping[str, Any],
        changes: Mapping[str, Any],
        reasons: tuple[str, ...] = (),
    ) -> Disclosure:
        """Record the decision and end the held disclosure (rejected or denied): nothing is sent,
        and the held copy is destroyed."""

        async def work(conn: Connection) -> Disclosure:
            await self._decisions.record(conn, decision)
            await self._held_records.transition(
                conn,
                found.id,
                status,
                event_type=str(status),
                actor=Actor(ActorKind.ADMIN, decision.actor),
                at=decision.decided_at,
                detail=dict(detail),
                changes={"approver": decision.actor, **changes},
            )
            await self._decided(conn, decision, found, reasons)
            return await self._updated(conn, found.id)

        return await self._store.write(work)

    async def _decided(
        self,
        conn: Connection,
        decision: Approval,
        found: Disclosure,
        reasons: tuple[str, ...] = (),
    ) -> None:
        """The decision's own audit entry: who (and by which login), their role, narrowing."""
        details: dict[str, Any] = {"login": decision.login, "role": decision.role}
        if decision.fields_granted is not None:
            details["fields_granted"] = list(decision.fields_granted)
        if reasons:
            details["reasons"] = list(reasons)
        await self._audit(
            conn,
            Actor(ActorKind.ADMIN, decision.actor),
            f"approval.{decision.decision}",
            at=decision.decided_at,
            targets={"disclosure": found.id, "agreement": found.agreement_id},
            details=details,
        )

    async def _updated(self, conn: Connection, disclosure_id: str) -> Disclosure:
        updated = await self._held_records.get(conn, disclosure_id)
        assert updated is not None
        return updated

    def _record(
        self,
        sub: SubmitDisclosure,
        *,
        disclosure_id: str,
        registered: StoredApprover,
        approver: ApproverIdentity,
        reason: str,
        at: datetime,
        granted: tuple[str, ...] | None = None,
    ) -> Callable[[str], Approval]:
        """The Annex B record of the decision, its free-text facts sealed at rest."""
        facts = facts_for_record(sub.annex_b, disclosure_id, self._protection)

        def decided(decision: str) -> Approval:
            return Approval(
                disclosure_id,
                facts,
                decision,
                registered.name,
                reason,
                at,
                login=approver.login,
                role=registered.role,
                fields_granted=granted,
            )

        return decided
