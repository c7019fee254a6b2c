"""Approving or rejecting a held disclosure (one-off agreements, police and DWP requests).

Only a registered approver for the agreement decides, never the requester (`four_eyes`); a
refused attempt changes nothing and is audited. Approval re-runs the whole decision on the policy,
client, opt-out list and keys in force at that moment: a refusal leaves the disclosure `denied`
with the policy's reasons. Otherwise the request is minimised (to the approver's narrowing, if
any) and sealed exactly as the submit use case does, and released to the outbox in one unit of
work with the Annex B record; the held copy is deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NoReturn

from agreements.decision import DecisionContext, DisclosureRequest, decide
from agreements.minimise import minimise
from agreements.model import Agreement, OptOutBasis, Partner
from gateway.application.admin_ports import AuditTrail, StorePort, chained_entry
from gateway.application.annex_b import AnnexBRecord, annex_b_record, facts_for_record
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
    approver_refusal,
    granted_fields,
    narrowed,
    staff_key,
)
from gateway.application.submit import PolicyView
from gateway.audit import Actor, ActorKind
from gateway.errors import GatewayError, NotFoundError
from gateway.partner_keys import PartnerKey, PartnerKeyError, encryption_key_for
from gateway.protection import Protection
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
        self._approvers, self._clients, self._opt_outs = approvers, clients, opt_outs
        self._audit = audit_entry

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
        registered = await self._authorised(found, approver, "approve", now)
        agreement = snapshot.agreements.get(found.agreement_id)
        granted = None
        if fields is not None and agreement is not None:
            chosen = granted_fields(fields, agreement.rules_for(found.purpose))
            if isinstance(chosen, DecisionRefusedError):
                await self._refuse(found, approver, chosen, "approve", now)
            granted = chosen
        partner = snapshot.partners.get(found.partner_id)
        key = _encryption_key(snapshot, found.partner_id, now)
        decision = decide(
            DisclosureRequest(
                agreement_id=found.agreement_id,
                purpose=found.purpose,
                subject_identifiers=frozenset(sub.subject),
                has_approval_facts=sub.annex_b is not None,
                approval_granted=True,
            ),
            agreement,
            await self._context_now(
                found, sub, agreement=agreement, partner=partner, key=key, now=now
            ),
        )
        record = self._record(
            sub,
            disclosure_id=found.id,
            registered=registered,
            approver=approver,
            reason=reason,
            at=now,
            granted=granted,
        )
        if not decision.allowed or agreement is None or partner is None or key is None:
            reasons = decision.reasons or ("agreement_not_found",)
            return await self._deny(found.id, record, reasons, approver)
        sealed, (sent, removed) = await self._sealer.seal_for(
            sub,
            agreement=agreement if granted is None else narrowed(agreement, granted),
            partner=partner,
            key=key,
            disclosure_id=found.id,
            now=now,
        )
        actor = Actor(ActorKind.ADMIN, registered.name)
        approval = record("approved")

        async def work(conn: Connection) -> Disclosure:
            await self._decisions.record(conn, approval)
            await self._held_records.release_approved(
                conn,
                found.id,
                envelope=sealed.body,
                digest=sealed.digest,
                approver=registered.name,
                fields_sent=sent,
                fields_removed=removed,
                key_ids=(sealed.signing_kid, sealed.encryption_kid),
                actor=actor,
                at=now,
            )
            await self._decided(conn, approval, found)
            return await self._updated(conn, found.id)

        return await self._store.write(work)

    async def reject(
        self, disclosure_id: str, *, approver: ApproverIdentity, reason: str
    ) -> Disclosure:
        """Reject: record the decision, status rejected, held copy destroyed."""
        now = self._clock()
        found, sub = await self._held(disclosure_id)
        registered = await self._authorised(found, approver, "reject", now)
        rejection = self._record(
            sub,
            disclosure_id=found.id,
            registered=registered,
            approver=approver,
            reason=reason,
            at=now,
        )("rejected")

        async def work(conn: Connection) -> Disclosure:
            await self._decisions.record(conn, rejection)
            await self._held_records.transition(
                conn,
                found.id,
                Status.REJECTED,
                event_type="rejected",
                actor=Actor(ActorKind.ADMIN, registered.name),
                at=now,
                detail={"approver": registered.name},
                changes={"approver": registered.name},
            )
            await self._decided(conn, rejection, found)
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

    async def _authorised(
        self, found: Disclosure, approver: ApproverIdentity, attempted: str, now: datetime
    ) -> StoredApprover:
        """The registered approver who may decide `found`; a refusal is audited and raised."""
        async with self._store.read() as conn:
            registered = await self._approvers.get(conn, staff_key(approver.name))
        refusal = approver_refusal(
            approver.name,
            requested_by=found.requested_by_user,
            agreement_id=found.agreement_id,
            registered=registered,
        )
        if refusal is not None:
            await self._refuse(found, approver, refusal, attempted, now)
        assert registered is not None  # approver_refusal refuses a name nobody registered
        return registered

    async def _refuse(
        self,
        found: Disclosure,
        approver: ApproverIdentity,
        refusal: DecisionRefusedError,
        attempted: str,
        now: datetime,
    ) -> NoReturn:
        """Audit the refused attempt (nothing else changes), then raise it."""
        details = {"code": refusal.code, "attempted": attempted, "login": approver.login}

        async def work(conn: Connection) -> None:
            await self._audit(
                conn,
                Actor(ActorKind.ADMIN, approver.name.strip()),
                "approval.refused",
                at=now,
                targets={"disclosure": found.id, "agreement": found.agreement_id},
                details=details,
            )

        await self._store.write(work)
        raise refusal

    async def _context_now(
        self,
        found: Disclosure,
        sub: SubmitDisclosure,
        *,
        agreement: Agreement | None,
        partner: Partner | None,
        key: PartnerKey | None,
        now: datetime,
    ) -> DecisionContext:
        """The client's rights, the opt-out list, keys and channel as they stand now."""
        # As at submission: the list is consulted only where the agreement declares it applies.
        check_opt_out = (
            agreement is not None
            and agreement.national_data_opt_out == OptOutBasis.APPLIES
            and sub.nhs_number is not None
        )
        async with self._store.read() as conn:
            client = await self._clients.get(conn, found.client)
            opted_out = check_opt_out and await self._opt_outs.is_opted_out(
                conn, self._protection.blind_index("nhs_number", sub.nhs_number or "")
            )
        active = client is not None and client.status == "active"
        return DecisionContext(
            today=now.date(),
            client_agreements=client.allowed_agreements if client and active else frozenset(),
            subject_opted_out=opted_out,
            partner_has_valid_key=key is not None,
            partner_channel=str(partner.channel.type) if partner else None,
            deliverable_channels=self._channels,
        )

    async def _deny(
        self,
        disclosure_id: str,
        record: Callable[[str], Approval],
        reasons: tuple[str, ...],
        approver: ApproverIdentity,
    ) -> Disclosure:
        """Approved, but refused by the decision re-run: denied with the policy's reasons."""
        denial = record("denied")

        async def work(conn: Connection) -> Disclosure:
            await self._decisions.record(conn, denial)
            found = await self._updated(conn, disclosure_id)
            await self._held_records.transition(
                conn,
                disclosure_id,
                Status.DENIED,
                event_type="denied",
                actor=Actor(ActorKind.ADMIN, denial.actor),
                at=denial.decided_at,
                detail={"reasons": list(reasons), "approver": denial.actor},
                changes={"approver": denial.actor, "decision_reasons": list(reasons)},
            )
            await self._decided(conn, denial, found, reasons)
            return await self._updated(conn, disclosure_id)

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


def _encryption_key(snapshot: PolicyView, partner_id: str, now: datetime) -> PartnerKey | None:
    try:
        return encryption_key_for(snapshot.keys.get(partner_id, ()), partner_id, now)
    except PartnerKeyError:
        return None
