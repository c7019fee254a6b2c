"""Approving or rejecting a held disclosure (one-off agreements, police and DWP requests).

The held request is opened from its at-rest seal, decided again with the approval granted (the
agreement may have been suspended meanwhile), minimised and sealed exactly as the pipeline does,
and released to the outbox in one transaction with the Annex B record; the held copy is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from agreements.decision import DecisionContext, DisclosureRequest, Outcome, decide
from agreements.minimise import minimise
from gateway import audit
from gateway.application.commands import SubmitDisclosure
from gateway.errors import GatewayError, NotFoundError
from gateway.partner_keys import PartnerKeyError, encryption_key_for
from gateway.service import DELIVERABLE_CHANNELS, Gateway
from gateway.store import approvals, disclosures
from gateway.store.disclosure_model import Disclosure, Status
from gateway.store.tables import disclosures as disclosures_table

SEALED_FACTS = ("offence_or_prejudice", "why_necessary")  # free text: may name people


class ApprovalRefusedError(GatewayError):
    """The held disclosure cannot be approved now (policy changed, key missing, not held)."""

    code = "approval_refused"


@dataclass(frozen=True)
class HeldDisclosure:
    """What an approver sees: the metadata, the Annex B facts, what would be sent."""

    disclosure: Disclosure
    annex_b: dict[str, Any] | None
    reason: str
    would_send: tuple[str, ...]
    would_remove: tuple[str, ...]


async def pending(gateway: Gateway) -> list[Disclosure]:
    """Every disclosure waiting for a decision, oldest first."""
    async with gateway.store.read() as conn:
        rows = await conn.execute(
            select(disclosures_table)
            .where(disclosures_table.c.status == Status.PENDING_APPROVAL.value)
            .order_by(disclosures_table.c.created_at)
        )
        return [Disclosure.from_row(row._mapping) for row in rows]


async def _held(gateway: Gateway, disclosure_id: str) -> tuple[Disclosure, SubmitDisclosure]:
    async with gateway.store.read() as conn:
        found = await disclosures.get(conn, disclosure_id)
        if found is None:
            raise NotFoundError(f"no disclosure {disclosure_id}")
        if found.status is not Status.PENDING_APPROVAL:
            raise ApprovalRefusedError(f"disclosure {disclosure_id} is {found.status}, not held")
        raw = await disclosures.held_request(conn, disclosure_id, gateway.protection)
    return found, SubmitDisclosure.from_held(raw)


async def show(gateway: Gateway, disclosure_id: str) -> HeldDisclosure:
    """The held disclosure as an approver needs it (opened in memory only)."""
    found, sub = await _held(gateway, disclosure_id)
    agreement = gateway.policy.snapshot.agreements.get(found.agreement_id)
    sent: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    if agreement is not None:
        result = minimise(
            sub.record, agreement, sub.purpose,
            pseudonym_key=gateway.protection.pseudonym_key, today=gateway.clock().date(),
            subject=sub.subject,
        )  # fmt: skip
        sent, removed = result.sent, result.removed
    facts = dict(sub.annex_b) if sub.annex_b else None
    return HeldDisclosure(found, facts, sub.reason, sent, removed)


def _facts_for_record(
    gateway: Gateway, disclosure_id: str, sub: SubmitDisclosure
) -> dict[str, Any]:
    if sub.annex_b is None:
        return {}
    facts = {k: v for k, v in sub.annex_b.items() if v is not None}
    for name in SEALED_FACTS:
        if name in facts:
            facts[name] = {"sealed": gateway.protection.seal_text(facts[name], disclosure_id)}
    return facts


async def approve(gateway: Gateway, disclosure_id: str, *, actor: str, reason: str) -> Disclosure:
    """Approve: decide again with approval granted, seal, queue, delete the held copy."""
    await gateway.policy.refresh()
    now = gateway.clock()
    found, sub = await _held(gateway, disclosure_id)
    snapshot = gateway.policy.snapshot
    agreement = snapshot.agreements.get(found.agreement_id)
    partner = snapshot.partners.get(found.partner_id)
    try:
        key = encryption_key_for(snapshot.keys.get(found.partner_id, ()), found.partner_id, now)
    except PartnerKeyError:
        key = None
    request = DisclosureRequest(
        agreement_id=found.agreement_id, purpose=found.purpose,
        subject_identifiers=frozenset(sub.subject),
        has_approval_facts=sub.annex_b is not None, approval_granted=True,
    )  # fmt: skip
    context = DecisionContext(
        today=now.date(), client_agreements=frozenset({found.agreement_id}),
        partner_has_valid_key=key is not None,
        partner_channel=str(partner.channel.type) if partner else None,
        deliverable_channels=DELIVERABLE_CHANNELS,
    )  # fmt: skip
    decision = decide(request, agreement, context)
    if decision.outcome is not Outcome.ALLOWED or agreement is None or partner is None:
        raise ApprovalRefusedError(
            "cannot approve now: " + ", ".join(decision.reasons or ("agreement_not_found",))
        )
    assert key is not None
    sealed, (sent, removed) = gateway.submit.seal_for(
        sub, agreement=agreement, partner=partner, key=key, disclosure_id=found.id, now=now
    )
    admin = audit.Actor(audit.ActorKind.ADMIN, actor)
    async with gateway.store.transaction() as conn:
        await approvals.record(
            conn,
            approvals.Approval(
                found.id, _facts_for_record(gateway, found.id, sub), "approved", actor, reason, now
            ),
        )
        await disclosures.release_approved(
            conn, found.id, envelope=sealed.body, digest=sealed.digest, approver=actor,
            fields_sent=sent, fields_removed=removed,
            key_ids=(sealed.signing_kid, sealed.encryption_kid), actor=admin, at=now,
        )  # fmt: skip
        updated = await disclosures.get(conn, found.id)
    assert updated is not None
    return updated


async def reject(gateway: Gateway, disclosure_id: str, *, actor: str, reason: str) -> Disclosure:
    """Reject: record the decision, status rejected, held copy destroyed."""
    now = gateway.clock()
    found, sub = await _held(gateway, disclosure_id)
    admin = audit.Actor(audit.ActorKind.ADMIN, actor)
    async with gateway.store.transaction() as conn:
        await approvals.record(
            conn,
            approvals.Approval(
                found.id, _facts_for_record(gateway, found.id, sub), "rejected", actor, reason, now
            ),
        )
        await disclosures.transition(
            conn, found.id, Status.REJECTED, event_type="rejected", actor=admin, at=now,
            detail={"approver": actor}, changes={"approver": actor},
        )  # fmt: skip
        updated = await disclosures.get(conn, found.id)
    assert updated is not None
    return updated
