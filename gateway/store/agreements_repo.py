"""Agreements as applied: every version kept, with its document and content hash."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import RowMapping, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.errors import ConflictError
from gateway.store.tables import agreements


@dataclass(frozen=True, slots=True)
class StoredAgreement:
    """One version of an agreement as the store keeps it (the policy core owns its meaning)."""

    id: str
    version: int
    status: str
    partner_id: str
    effective_from: date
    effective_to: date | None
    review_due: date | None
    document: Mapping[str, Any]
    content_hash: str
    applied_by: str
    applied_at: datetime

    @classmethod
    def from_row(cls, row: RowMapping) -> StoredAgreement:
        """Build from an `agreements` row."""
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


async def save(conn: AsyncConnection, agreement: StoredAgreement) -> bool:
    """Store a version; False if this exact version is already stored, conflict if it differs."""
    existing = await get(conn, agreement.id, agreement.version)
    if existing is not None:
        if existing.content_hash != agreement.content_hash:
            raise ConflictError(
                f"agreement {agreement.id} v{agreement.version} is stored with other content; "
                "a change needs a new version",
                code="agreement_version_exists",
            )
        return False
    values = {name: getattr(agreement, name) for name in StoredAgreement.__dataclass_fields__}
    values["document"] = dict(agreement.document)
    await conn.execute(insert(agreements), values)
    return True


async def get(
    conn: AsyncConnection, id_: str, version: int | None = None
) -> StoredAgreement | None:
    """A version of an agreement, or its newest version when `version` is None."""
    query = select(agreements).where(agreements.c.id == id_)
    if version is None:
        query = query.order_by(agreements.c.version.desc()).limit(1)
    else:
        query = query.where(agreements.c.version == version)
    row = (await conn.execute(query)).first()
    return StoredAgreement.from_row(row._mapping) if row else None


async def versions(conn: AsyncConnection, id_: str) -> list[StoredAgreement]:
    """Every stored version of an agreement, oldest first."""
    query = select(agreements).where(agreements.c.id == id_).order_by(agreements.c.version)
    return [StoredAgreement.from_row(r._mapping) for r in await conn.execute(query)]


async def current(conn: AsyncConnection) -> list[StoredAgreement]:
    """The newest version of every agreement."""
    newest = (
        select(agreements.c.id, func.max(agreements.c.version).label("version"))
        .group_by(agreements.c.id)
        .subquery()
    )
    query = (
        select(agreements)
        .join(
            newest,
            (agreements.c.id == newest.c.id) & (agreements.c.version == newest.c.version),
        )
        .order_by(agreements.c.id)
    )
    return [StoredAgreement.from_row(r._mapping) for r in await conn.execute(query)]


async def set_status(conn: AsyncConnection, id_: str, version: int, status: str) -> bool:
    """Suspend, terminate or expire a version (the document itself never changes)."""
    result = await conn.execute(
        update(agreements)
        .where(agreements.c.id == id_, agreements.c.version == version)
        .values(status=status)
    )
    return bool(result.rowcount)
