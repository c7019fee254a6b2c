"""Registered approvers: who may decide held disclosures under which agreements."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.tables import approvers


@dataclass(frozen=True, slots=True)
class StoredApprover:
    """An approver as stored; `name_key` is the identifier trimmed and case-folded."""

    name_key: str
    name: str
    role: str | None
    agreements: frozenset[str]
    added_by: str
    added_at: datetime


async def create(conn: AsyncConnection, approver: StoredApprover) -> None:
    """Register an approver (the caller has checked the name is free)."""
    await conn.execute(
        insert(approvers),
        {
            "name_key": approver.name_key,
            "name": approver.name,
            "role": approver.role,
            "agreements": sorted(approver.agreements),
            "added_by": approver.added_by,
            "added_at": approver.added_at,
        },
    )


async def get(conn: AsyncConnection, name_key: str) -> StoredApprover | None:
    """One approver by normalised name."""
    query = select(approvers).where(approvers.c.name_key == name_key)
    row = (await conn.execute(query)).first()
    return _approver(row) if row else None


async def remove(conn: AsyncConnection, name_key: str) -> bool:
    """Unregister an approver; False when there was none."""
    result = await conn.execute(delete(approvers).where(approvers.c.name_key == name_key))
    return bool(result.rowcount)


async def all_approvers(conn: AsyncConnection) -> list[StoredApprover]:
    """Every registered approver, by normalised name."""
    query = select(approvers).order_by(approvers.c.name_key)
    return [_approver(row) for row in await conn.execute(query)]


def _approver(row: object) -> StoredApprover:
    r = row._mapping  # type: ignore[attr-defined]
    return StoredApprover(
        r["name_key"],
        r["name"],
        r["role"],
        frozenset(r["agreements"]),
        r["added_by"],
        r["added_at"],
    )
