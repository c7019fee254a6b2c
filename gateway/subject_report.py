"""The subject-access report: every disclosure about one person, found by blind index only."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from agreements.nhs_number import nhs_number_valid
from gateway import audit
from gateway.application.admin_ports import StorePort
from gateway.errors import GatewayError
from gateway.protection import Protection
from gateway.store import disclosures
from gateway.store.disclosure_model import Disclosure
from gateway.store.unit_of_work import Connection

_SEPARATORS = re.compile(r"[\s-]")


class InvalidNhsNumberError(GatewayError):
    """The NHS number fails the modulus 11 check: a typo would otherwise report no disclosures."""

    code = "nhs_number_invalid"


@dataclass(frozen=True, slots=True)
class SubjectDisclosure:
    """One line of the report: who received what about the person, when, and why."""

    id: str
    date: datetime
    partner: str
    client: str  # the council's system the disclosure came from
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
    store: StorePort,
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
    if nhs_number:
        nhs_number = _SEPARATORS.sub("", nhs_number)  # as written on letters: 943 476 5919
        if not nhs_number_valid(nhs_number):
            raise InvalidNhsNumberError(
                "not a valid NHS number (ten digits, the last its modulus 11 check digit); "
                "nothing was searched"
            )
    nhs_index = protection.blind_index("nhs_number", nhs_number) if nhs_number else None
    local_index = protection.blind_index("local_id", local_id) if local_id else None
    by = [name for name, given in (("nhs_number", nhs_number), ("local_id", local_id)) if given]

    async def work(conn: Connection) -> list[Disclosure]:
        found = await disclosures.about_subject(conn, nhs_index=nhs_index, local_index=local_index)
        details = {"by": by, "results": len(found)}
        await audit.append(conn, actor, "subject_report.run", at=at, details=details)
        return found

    return [
        SubjectDisclosure(
            id=d.id,
            date=d.created_at,
            partner=d.partner_id,
            client=d.client,
            agreement_id=d.agreement_id,
            agreement_version=d.agreement_version,
            purpose=d.purpose,
            lawful_basis=d.lawful_basis,
            fields_sent=d.fields_sent,
            status=str(d.status),
            retain_until=d.retain_until,
        )
        for d in await store.write(work)
    ]
