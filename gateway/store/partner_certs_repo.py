"""SQL for partners' S/MIME certificates (checked before they get here: gateway.partner_certs)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import RowMapping, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.tables import partner_certs, partners
from gateway.store.upsert import upsert


@dataclass(frozen=True, slots=True)
class StoredPartnerCert:
    """One registered certificate as stored."""

    partner_id: str
    fingerprint: str
    subject: str
    emails: tuple[str, ...]
    pem: str
    not_before: datetime
    not_after: datetime
    status: str = "active"
    revoked_reason: str | None = None
    revoked_at: datetime | None = None

    @classmethod
    def from_row(cls, row: RowMapping) -> StoredPartnerCert:
        """Build from a `partner_certs` row."""
        values = {name: row[name] for name in cls.__dataclass_fields__}
        values["emails"] = tuple(values["emails"] or ())
        return cls(**values)


async def add_cert(conn: AsyncConnection, cert: StoredPartnerCert, *, at: datetime) -> None:
    """Register a certificate; registering it again leaves its status (a revocation stands)."""
    values = {name: getattr(cert, name) for name in StoredPartnerCert.__dataclass_fields__}
    values.update(emails=list(cert.emails), created_at=at)
    await upsert(
        conn,
        partner_certs,
        values,
        keys=("partner_id", "fingerprint"),
        keep=("created_at", "status", "revoked_reason", "revoked_at"),
    )


async def certs_of(conn: AsyncConnection, partner_id: str) -> list[StoredPartnerCert]:
    """Every certificate a partner registered, revoked and expired ones included."""
    query = (
        select(partner_certs)
        .where(partner_certs.c.partner_id == partner_id)
        .order_by(partner_certs.c.not_after, partner_certs.c.fingerprint)
    )
    return [StoredPartnerCert.from_row(r._mapping) for r in await conn.execute(query)]


async def all_certs(conn: AsyncConnection) -> list[StoredPartnerCert]:
    """Every registered certificate, whatever its status."""
    query = select(partner_certs).order_by(partner_certs.c.partner_id, partner_certs.c.not_after)
    return [StoredPartnerCert.from_row(r._mapping) for r in await conn.execute(query)]


async def revoke_cert(
    conn: AsyncConnection, partner_id: str, fingerprint: str, reason: str, *, at: datetime
) -> bool:
    """Revoke a certificate for good; False when there is no such certificate."""
    result = await conn.execute(
        update(partner_certs)
        .where(partner_certs.c.partner_id == partner_id, partner_certs.c.fingerprint == fingerprint)
        .values(status="revoked", revoked_reason=reason, revoked_at=at)
    )
    return bool(result.rowcount)


async def email_partners_certs(
    conn: AsyncConnection, partner_ids: Collection[str]
) -> dict[str, list[StoredPartnerCert]]:
    """Of these partners, those reached by email, each with its certificates (maybe none)."""
    query = select(partners.c.id).where(
        partners.c.channel == "email", partners.c.id.in_(partner_ids)
    )
    found: dict[str, list[StoredPartnerCert]] = {row.id: [] for row in await conn.execute(query)}
    if found:
        rows = await conn.execute(
            select(partner_certs).where(partner_certs.c.partner_id.in_(list(found)))
        )
        for row in rows:
            cert = StoredPartnerCert.from_row(row._mapping)
            found[cert.partner_id].append(cert)
    return found
