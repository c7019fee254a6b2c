"""Put a catalog of partners and agreements into force (`gateway-admin catalog apply`).

The plan (`gateway.catalog_sync.plan`) is made in the unit of work that writes it, so the stored
versions it was checked against are the ones it writes over; while it has a refusal, nothing is
written. Every write has its audit entry, and the entries are chained before the work commits.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from agreements.model import Catalog
from gateway.application.admin_ports import StorePort
from gateway.audit import Actor
from gateway.catalog_sync import (
    AgreementChange,
    CatalogRefusedError,
    FieldChange,
    PartnerChange,
    Plan,
    agreement_record,
    partner_record,
    plan,
)
from gateway.store import agreements_repo, audit_log, partners_repo
from gateway.store.agreements_repo import StoredAgreement
from gateway.store.partners_repo import StoredPartner
from gateway.store.unit_of_work import Connection

MAX_AUDITED_FIELDS = 40


class AgreementVersions(Protocol):
    """Stored agreement versions (`gateway.store.agreements_repo`)."""

    async def current(self, conn: Connection) -> list[StoredAgreement]: ...

    async def save(self, conn: Connection, agreement: StoredAgreement) -> bool: ...


class PartnerRows(Protocol):
    """Stored partners (`gateway.store.partners_repo`)."""

    async def all_partners(self, conn: Connection) -> list[StoredPartner]: ...

    async def save_partner(
        self, conn: Connection, partner: StoredPartner, *, at: datetime
    ) -> None: ...


class AuditLog(Protocol):
    """Entries appended in the unit of work, then chained at its end (`gateway.store.audit_log`)."""

    async def append(
        self,
        conn: Connection,
        actor: Actor,
        action: str,
        *,
        at: datetime,
        targets: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None: ...

    async def seal(self, conn: Connection, *, at: datetime) -> int: ...


async def plan_catalog(
    store: StorePort,
    catalog: Catalog,
    *,
    agreements: AgreementVersions = agreements_repo,
    partners: PartnerRows = partners_repo,
) -> Plan:
    """What applying `catalog` would change now (the dry run); writes nothing."""
    async with store.read() as conn:
        return plan(catalog, await agreements.current(conn), await partners.all_partners(conn))


async def apply_catalog(
    store: StorePort,
    catalog: Catalog,
    *,
    actor: Actor,
    at: datetime,
    agreements: AgreementVersions = agreements_repo,
    partners: PartnerRows = partners_repo,
    audit: AuditLog = audit_log,
) -> Plan:
    """Plan against the store and write it all in one unit of work; returns the plan applied.

    Raises `CatalogRefusedError` (carrying the plan) and writes nothing if anything is refused.
    """

    async def work(conn: Connection) -> Plan:
        current = await agreements.current(conn)
        result = plan(catalog, current, await partners.all_partners(conn))
        if not result.ok:
            raise CatalogRefusedError(result)
        for partner_change in result.partners:
            if partner_change.kind != "unchanged":
                record = partner_record(catalog.partners[partner_change.id])
                await partners.save_partner(conn, record, at=at)
                await audit.append(
                    conn,
                    actor,
                    "partner.saved",
                    at=at,
                    targets={"partner": record.id},
                    details=_partner_details(partner_change, record),
                )
        for change in result.agreements:
            if change.kind in ("new_agreement", "new_version"):
                agreement = catalog.agreements[change.id]
                stored = agreement_record(agreement, applied_by=actor.name, at=at)
                await agreements.save(conn, stored)
                await audit.append(
                    conn,
                    actor,
                    "agreement.applied",
                    at=at,
                    targets={"agreement": agreement.id, "partner": agreement.partner},
                    details=_agreement_details(change, stored),
                )
        await audit.seal(conn, at=at)
        return result

    return await store.write(work)


def _partner_details(change: PartnerChange, record: StoredPartner) -> dict[str, Any]:
    """What the audit entry says of a saved partner: its channel, never its contacts' values."""
    return {"change": change.kind, "channel": record.channel, **_changed_fields(change.changes)}


def _agreement_details(change: AgreementChange, record: StoredAgreement) -> dict[str, Any]:
    """What the audit entry says of an applied version."""
    return {
        "version": record.version,
        "previous_version": change.stored_version,
        "status": record.status,
        "content_hash": record.content_hash,
        **_changed_fields(change.changes),
    }


def _changed_fields(changes: Sequence[FieldChange]) -> dict[str, Any]:
    """The names of the fields changed (no values), capped so an entry stays small."""
    names = sorted({c.field for c in changes})
    return {"changed_fields": names[:MAX_AUDITED_FIELDS], "changed_fields_total": len(names)}
