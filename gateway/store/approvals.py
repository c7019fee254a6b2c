"""Approval decisions on held disclosures, with the ICO Annex B facts, and what awaits one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.disclosure_model import Disclosure, Status
from gateway.store.tables import approvals, disclosures

DECISIONS = frozenset({"approved", "rejected", "denied"})


@dataclass(frozen=True, slots=True)
class Approval:
    """A human decision: the Annex B facts, the decision, by whom, why, when.

    `decision` is `approved`, `rejected`, or `denied` (approved, but the decision re-run at that
    moment refused it). `actor` is the registered approver, `login` the operating-system login
    that ran the command; `fields_granted` the approver's narrowing of the allowlist, if any.
    """

    disclosure_id: str
    facts: Mapping[str, Any]
    decision: str
    actor: str
    reason: str
    decided_at: datetime
    login: str | None = None
    role: str | None = None
    fields_granted: tuple[str, ...] | None = None


async def record(conn: AsyncConnection, approval: Approval) -> None:
    """Store a decision (call in the transaction that moves the disclosure on)."""
    if approval.decision not in DECISIONS:
        raise ValueError("decision must be approved, rejected or denied")
    values = {name: getattr(approval, name) for name in Approval.__dataclass_fields__}
    values["facts"] = dict(approval.facts)
    granted = approval.fields_granted
    values["fields_granted"] = None if granted is None else list(granted)
    await conn.execute(insert(approvals), values)


async def for_disclosure(conn: AsyncConnection, disclosure_id: str) -> list[Approval]:
    """Every decision on a disclosure, oldest first."""
    query = (
        select(approvals)
        .where(approvals.c.disclosure_id == disclosure_id)
        .order_by(approvals.c.decided_at, approvals.c.id)
    )
    return [
        Approval(
            r.disclosure_id,
            r.facts,
            r.decision,
            r.actor,
            r.reason,
            r.decided_at,
            r.login,
            r.role,
            None if r.fields_granted is None else tuple(r.fields_granted),
        )
        for r in await conn.execute(query)
    ]


async def awaiting_decision(conn: AsyncConnection) -> list[Disclosure]:
    """Every disclosure held for an approver's decision, oldest first."""
    query = (
        select(disclosures)
        .where(disclosures.c.status == Status.PENDING_APPROVAL.value)
        .order_by(disclosures.c.created_at)
    )
    return [Disclosure.from_row(row._mapping) for row in await conn.execute(query)]
