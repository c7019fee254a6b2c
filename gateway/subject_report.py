"""The subject-access report: every disclosure about one person, found by blind index only."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from gateway import audit
from gateway.protection import Protection
from gateway.store.database import Store
from gateway.store.tables import disclosures


@dataclass(frozen=True, slots=True)
class SubjectDisclosure:
    """One line of the report: who received what about the person, when, and why."""

    id: str
    date: datetime
    partner: str
    agreement_id: str
    agreement_version: int
    purpose: str
    lawful_basis: str
    fields_sent: tuple[str, ...]
    status: str
    retain_until: datetime

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = asdict(self)
        data["date"] = self.date.isoformat()
        data["retain_until"] = self.retain_until.isoformat()
        data["fields_sent"] = list(self.fields_sent)
        return data


async def subject_report(
    store: Store,
    protection: Protection,
    *,
    nhs_number: str | None = None,
    local_id: str | None = None,
    actor: audit.Actor,
    at: datetime,
) -> list[SubjectDisclosure]:
    """Find every disclosure about the person (oldest first) and audit that someone looked."""
    if not nhs_number and not local_id:
        raise ValueError("give an NHS number or a local id")
    matches = []
    if nhs_number:
        matches.append(
            disclosures.c.subject_nhs_index == protection.blind_index("nhs_number", nhs_number)
        )
    if local_id:
        matches.append(
            disclosures.c.subject_local_index == protection.blind_index("local_id", local_id)
        )
    query = select(disclosures).where(or_(*matches)).order_by(disclosures.c.created_at)
    async with store.transaction() as conn:
        rows = list(await conn.execute(query))
        by = [name for name, given in (("nhs_number", nhs_number), ("local_id", local_id)) if given]
        await audit.append(
            conn, actor, "subject_report.run", at=at, details={"by": by, "results": len(rows)}
        )
    return [
        SubjectDisclosure(
            id=r.id,
            date=r.created_at,
            partner=r.partner_id,
            agreement_id=r.agreement_id,
            agreement_version=r.agreement_version,
            purpose=r.purpose,
            lawful_basis=r.lawful_basis,
            fields_sent=tuple(r.fields_sent),
            status=r.status,
            retain_until=r.retain_until,
        )
        for r in rows
    ]
