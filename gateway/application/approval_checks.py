"""What an approval checks against the store before anything changes.

The four-eyes rule (a refused attempt is audited, then raised), and the circumstances at the
moment of approval that the decision is re-run on: the requesting system's rights, the national
data opt-out, the partner's key and channel.
"""

from __future__ import annotations

from datetime import datetime
from typing import NoReturn

from agreements.decision import DecisionContext, opt_out_applies
from agreements.model import Agreement, Partner
from gateway.application.admin_ports import AuditTrail, StorePort
from gateway.application.approval_ports import ApproverLookup, ClientLookup, OptOutLookup
from gateway.application.commands import SubmitDisclosure
from gateway.application.four_eyes import (
    ApproverIdentity,
    DecisionRefusedError,
    approver_refusal,
    staff_key,
)
from gateway.application.submit import PolicyView
from gateway.audit import Actor, ActorKind
from gateway.partner_keys import PartnerKey, PartnerKeyError, encryption_key_for
from gateway.protection import Protection
from gateway.store.approvers_repo import StoredApprover
from gateway.store.disclosure_model import Disclosure
from gateway.store.unit_of_work import Connection


class ApprovalChecks:
    """The four-eyes rule and the decision's circumstances now, read from the store."""

    def __init__(
        self,
        *,
        store: StorePort,
        protection: Protection,
        deliverable_channels: frozenset[str],
        approvers: ApproverLookup,
        clients: ClientLookup,
        opt_outs: OptOutLookup,
        audit_entry: AuditTrail,
    ) -> None:
        self._store, self._protection, self._channels = store, protection, deliverable_channels
        self._approvers, self._clients, self._opt_outs = approvers, clients, opt_outs
        self._audit = audit_entry

    async def authorised(
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
            await self.refuse(found, approver, refusal, attempted, now)
        assert registered is not None  # approver_refusal refuses a name nobody registered
        return registered

    async def refuse(
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

    async def context_now(
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
        # As at submission: the list is consulted only where the opt-out governs the purpose.
        check_opt_out = (
            agreement is not None
            and opt_out_applies(agreement, found.purpose)
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
            # As at submission: email carries the signed JWT, so needs no partner JWK.
            partner_has_valid_key=key is not None
            or (partner is not None and str(partner.channel.type) == "email"),
            partner_channel=str(partner.channel.type) if partner else None,
            deliverable_channels=self._channels,
        )


def encryption_key(snapshot: PolicyView, partner_id: str, now: datetime) -> PartnerKey | None:
    """The partner's encryption key in force now, or None (the decision then refuses)."""
    try:
        return encryption_key_for(snapshot.keys.get(partner_id, ()), partner_id, now)
    except PartnerKeyError:
        return None
