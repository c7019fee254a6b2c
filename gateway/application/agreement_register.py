"""The agreements in force, as an administrator keeps them: status changes, what is due, versions.

A status change is written to the store, which every gateway process re-reads every few
seconds, so it takes effect for new disclosures without a restart.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gateway.agreement_lifecycle import (
    AgreementNotFoundError,
    DueItem,
    StatusAction,
    due_report,
    next_status,
)
from gateway.application.admin_ports import AuditTrail, StorePort, chained_entry
from gateway.audit import Actor
from gateway.partner_certs import from_stored
from gateway.partner_keys import PartnerKey, PartnerKeyError
from gateway.store import agreements_repo, partner_certs_repo, partners_repo
from gateway.store.agreements_repo import StoredAgreement
from gateway.store.partner_certs_repo import StoredPartnerCert
from gateway.store.partners_repo import StoredPartnerKey
from gateway.store.unit_of_work import Connection

PAST_TENSE = {"suspend": "suspended", "resume": "resumed", "terminate": "terminated"}


class AgreementRecords(Protocol):
    """Stored agreement versions (`gateway.store.agreements_repo`)."""

    async def get(
        self, conn: Connection, id_: str, version: int | None = None
    ) -> StoredAgreement | None: ...

    async def set_status(self, conn: Connection, id_: str, version: int, status: str) -> bool: ...

    async def current(self, conn: Connection) -> list[StoredAgreement]: ...

    async def versions(self, conn: Connection, id_: str) -> list[StoredAgreement]: ...


class PartnerKeyRows(Protocol):
    """Partners' key rows (`gateway.store.partners_repo`)."""

    async def keys_of(self, conn: Connection, partner_id: str) -> list[StoredPartnerKey]: ...


class EmailPartnerRows(Protocol):
    """Email partners and their S/MIME certificates (`gateway.store.partner_certs_repo`)."""

    async def email_partners_certs(
        self, conn: Connection, partner_ids: Collection[str]
    ) -> dict[str, list[StoredPartnerCert]]: ...


@dataclass(frozen=True, slots=True)
class AgreementStatusChange:
    """What a status change did to the newest version of an agreement."""

    id: str
    partner: str
    version: int
    from_status: str
    to_status: str
    reason: str


async def change_agreement_status(
    store: StorePort,
    agreement_id: str,
    action: StatusAction,
    reason: str,
    *,
    actor: Actor,
    at: datetime,
    agreements: AgreementRecords = agreements_repo,
    audit_entry: AuditTrail = chained_entry,
) -> AgreementStatusChange:
    """Suspend, resume or terminate an agreement's newest version, if its status allows it."""

    async def work(conn: Connection) -> AgreementStatusChange:
        stored = await agreements.get(conn, agreement_id)
        if stored is None:
            raise AgreementNotFoundError(f"no agreement {agreement_id!r} is stored")
        target = next_status(action, stored.status)
        await agreements.set_status(conn, stored.id, stored.version, target.value)
        change = AgreementStatusChange(
            stored.id, stored.partner_id, stored.version, stored.status, target.value, reason
        )
        await audit_entry(
            conn,
            actor,
            f"agreement.{PAST_TENSE[action]}",
            at=at,
            targets={"agreement": change.id, "partner": change.partner},
            details={
                "version": change.version,
                "from": change.from_status,
                "to": change.to_status,
                "reason": reason,
            },
        )
        return change

    return await store.write(work)


async def agreements_due(
    store: StorePort,
    *,
    now: datetime,
    days: int,
    agreements: AgreementRecords = agreements_repo,
    partners: PartnerKeyRows = partners_repo,
    email: EmailPartnerRows = partner_certs_repo,
    council_smime_until: datetime | None = None,
) -> list[DueItem]:
    """Agreements ending or due review within `days` (or overdue), partners lacking keys or
    certificates, and the council's own S/MIME certificate when it expires soon."""
    async with store.read() as conn:
        current = await agreements.current(conn)
        partner_ids = {a.partner_id for a in current}
        keys = {
            partner: _loadable(await partners.keys_of(conn, partner)) for partner in partner_ids
        }
        by_email = await email.email_partners_certs(conn, partner_ids)
    return due_report(
        current,
        keys,
        now=now,
        days=days,
        email_certs={p: [from_stored(c) for c in rows] for p, rows in by_email.items()},
        council_smime_until=council_smime_until,
    )


async def current_agreements(
    store: StorePort, *, agreements: AgreementRecords = agreements_repo
) -> list[StoredAgreement]:
    """The newest version of every agreement, by id."""
    async with store.read() as conn:
        return await agreements.current(conn)


async def agreement_versions(
    store: StorePort, agreement_id: str, *, agreements: AgreementRecords = agreements_repo
) -> list[StoredAgreement]:
    """Every stored version of an agreement, oldest first; `agreement_not_found` if none."""
    async with store.read() as conn:
        found = await agreements.versions(conn, agreement_id)
    if not found:
        raise AgreementNotFoundError(f"no agreement {agreement_id!r} is stored")
    return found


def _loadable(rows: list[StoredPartnerKey]) -> list[PartnerKey]:
    """Stored keys that still load; a key that no longer validates is not usable."""
    keys = []
    for row in rows:
        try:
            keys.append(PartnerKey.from_store(row))
        except PartnerKeyError:
            continue
    return keys
