"""The record of processing (UK GDPR Article 30) and the register of agreements, from the store.

Both read the newest stored version of every agreement; the record of processing adds what was
actually disclosed in a period, counted by the database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from pydantic import ValidationError

from agreements import plain_words
from agreements.model import Agreement, AgreementStatus, Partner
from agreements.processing_record import ProcessingEntry, processing_entry
from gateway.application.admin_ports import StorePort
from gateway.catalog_sync import partner_from_record
from gateway.store import agreements_repo, partners_repo
from gateway.store import disclosure_listing as log_store
from gateway.store.agreements_repo import StoredAgreement
from gateway.store.disclosure_listing import LogFilter
from gateway.store.partners_repo import StoredPartner
from gateway.store.unit_of_work import Connection

IN_FORCE = frozenset({AgreementStatus.ACTIVE.value, AgreementStatus.SUSPENDED.value})
LEFT_OR_LEAVING = ("queued", "dispatched", "receipted")


class AgreementRows(Protocol):
    """The newest stored version of every agreement (`gateway.store.agreements_repo`)."""

    async def current(self, conn: Connection) -> list[StoredAgreement]: ...


class PartnerList(Protocol):
    """Every stored partner (`gateway.store.partners_repo`)."""

    async def all_partners(self, conn: Connection) -> list[StoredPartner]: ...


class DisclosureCounts(Protocol):
    """Disclosures counted per agreement, version, purpose, status (`disclosure_log`)."""

    async def counts(
        self, conn: Connection, chosen: LogFilter
    ) -> dict[tuple[str, int, str, str], int]: ...


@dataclass(frozen=True, slots=True)
class ProcessingLine:
    """One agreement's entry with the disclosures made under it in the period."""

    entry: ProcessingEntry
    disclosed: int
    by_status: Mapping[str, int] = field(default_factory=dict)
    by_purpose: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProcessingRecord:
    """The data-sharing section of the record of processing for a period."""

    since: datetime
    before: datetime
    lines: tuple[ProcessingLine, ...]
    not_described: tuple[str, ...]  # stored agreements whose document no longer reads


@dataclass(frozen=True, slots=True)
class RegisterLine:
    """One agreement in the register: who, why, on what basis, when, reviewed, assessed, signed."""

    agreement: str
    version: int
    title: str
    partner: str
    partner_name: str
    purposes: tuple[str, ...]
    lawful_basis: str
    status: str
    effective_from: date
    effective_to: date | None
    review_due: date | None
    review_overdue: bool
    dpia: str | None
    sign_off: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "agreement": self.agreement,
            "version": self.version,
            "title": self.title,
            "partner": self.partner,
            "partner_name": self.partner_name,
            "purposes": list(self.purposes),
            "lawful_basis": self.lawful_basis,
            "status": self.status,
            "effective_from": self.effective_from.isoformat(),
            "effective_to": self.effective_to.isoformat() if self.effective_to else None,
            "review_due": self.review_due.isoformat() if self.review_due else None,
            "review_overdue": self.review_overdue,
            "dpia": self.dpia,
            "sign_off": list(self.sign_off),
        }


async def _policy(
    store: StorePort, agreements: AgreementRows, partners: PartnerList
) -> tuple[list[StoredAgreement], dict[str, Partner]]:
    async with store.read() as conn:
        stored = await agreements.current(conn)
        partner_rows = await partners.all_partners(conn)
    known: dict[str, Partner] = {}
    for row in partner_rows:
        try:
            known[row.id] = partner_from_record(row)
        except ValueError:
            continue  # a partner row that no longer reads is named by id only
    return stored, known


def _parsed(stored: StoredAgreement) -> Agreement | None:
    try:
        return Agreement.model_validate(dict(stored.document))
    except ValidationError:
        return None


async def record_of_processing(
    store: StorePort,
    *,
    since: datetime,
    before: datetime,
    agreements: AgreementRows = agreements_repo,
    partners: PartnerList = partners_repo,
    counter: DisclosureCounts = log_store,
) -> ProcessingRecord:
    """Every agreement in force, or used in the period, with what was disclosed under it."""
    stored, known = await _policy(store, agreements, partners)
    async with store.read() as conn:
        counted = await counter.counts(conn, LogFilter(since=since, before=before))
    by_status: dict[str, Counter[str]] = {}
    by_purpose: dict[str, Counter[str]] = {}
    for (agreement_id, _version, purpose, status), n in counted.items():
        by_status.setdefault(agreement_id, Counter())[status] += n
        if status in LEFT_OR_LEAVING:
            by_purpose.setdefault(agreement_id, Counter())[purpose] += n
    lines, unread = [], []
    for row in stored:
        if row.status not in IN_FORCE and row.id not in by_status:
            continue
        agreement = _parsed(row)
        if agreement is None:
            unread.append(row.id)
            continue
        statuses = by_status.get(row.id, Counter())
        lines.append(
            ProcessingLine(
                entry=processing_entry(agreement, known.get(agreement.partner)),
                disclosed=sum(statuses[s] for s in LEFT_OR_LEAVING),
                by_status=dict(sorted(statuses.items())),
                by_purpose=dict(sorted(by_purpose.get(row.id, Counter()).items())),
            )
        )
    return ProcessingRecord(since, before, tuple(lines), tuple(unread))


async def agreement_register(
    store: StorePort,
    *,
    today: date,
    agreements: AgreementRows = agreements_repo,
    partners: PartnerList = partners_repo,
) -> list[RegisterLine]:
    """Every stored agreement (newest version), in force or not, with its governance facts."""
    stored, known = await _policy(store, agreements, partners)
    lines = []
    for row in stored:
        agreement = _parsed(row)
        partner = known.get(row.partner_id)
        lines.append(
            RegisterLine(
                agreement=row.id,
                version=row.version,
                title=str(row.document.get("title", "")),
                partner=row.partner_id,
                partner_name=partner.name if partner else row.partner_id,
                purposes=tuple(str(p) for p in agreement.purposes) if agreement else (),
                lawful_basis=plain_words.lawful_basis(agreement.lawful_basis) if agreement else "",
                status=row.status,
                effective_from=row.effective_from,
                effective_to=row.effective_to,
                review_due=row.review_due,
                review_overdue=row.review_due is not None
                and row.review_due < today
                and row.status in IN_FORCE,
                dpia=agreement.references.dpia if agreement else None,
                sign_off=tuple(
                    f"{a.body}: {a.approver} ({a.post}), {a.date.isoformat()}"
                    for a in (agreement.approvals if agreement else ())
                ),
            )
        )
    return lines
