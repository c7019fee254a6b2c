"""The disclosure log: disclosures page by page in time order, filtered; names and codes only.

Pages are read by keyset (`created_at`, `id`) rather than by offset, so each page costs the same
however deep into a million rows it is, and a caller holds one page at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.disclosure_model import DISCLOSURE
from gateway.store.tables import disclosures


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Which disclosures: each set field narrows the log; `since` inclusive, `before` exclusive."""

    agreement: str | None = None
    partner: str | None = None
    status: str | None = None
    since: datetime | None = None
    before: datetime | None = None


@dataclass(frozen=True, slots=True)
class LoggedDisclosure:
    """One disclosure as the log shows it: no record values, no subject identifiers."""

    id: str
    created_at: datetime
    updated_at: datetime
    agreement_id: str
    agreement_version: int
    purpose: str
    partner_id: str
    lawful_basis: str
    status: str
    fields_sent: tuple[str, ...]
    approver: str | None
    retain_until: datetime


Cursor = tuple[datetime, str]

_COLUMNS = (
    disclosures.c.id,
    disclosures.c.created_at,
    disclosures.c.updated_at,
    disclosures.c.agreement_id,
    disclosures.c.agreement_version,
    disclosures.c.purpose,
    disclosures.c.partner_id,
    disclosures.c.lawful_basis,
    disclosures.c.status,
    disclosures.c.fields_sent,
    disclosures.c.approver,
    disclosures.c.retain_until,
)


def _where(chosen: LogFilter) -> list[ColumnElement[bool]]:
    c = disclosures.c
    # Article 19 notices travel the same pipeline but disclose nothing: not in the log.
    conditions: list[ColumnElement[bool]] = [c.record_kind == DISCLOSURE]
    if chosen.agreement is not None:
        conditions.append(c.agreement_id == chosen.agreement)
    if chosen.partner is not None:
        conditions.append(c.partner_id == chosen.partner)
    if chosen.status is not None:
        conditions.append(c.status == chosen.status)
    if chosen.since is not None:
        conditions.append(c.created_at >= chosen.since)
    if chosen.before is not None:
        conditions.append(c.created_at < chosen.before)
    return conditions


async def page(
    conn: AsyncConnection, chosen: LogFilter, *, after: Cursor | None, limit: int
) -> list[LoggedDisclosure]:
    """Up to `limit` disclosures after the cursor, oldest first."""
    c = disclosures.c
    conditions = _where(chosen)
    if after is not None:
        at, id_ = after
        # The leading `>=` lets both databases seek on the created_at index.
        conditions.append(and_(c.created_at >= at, or_(c.created_at > at, c.id > id_)))
    query = select(*_COLUMNS).where(*conditions).order_by(c.created_at, c.id).limit(limit)
    return [_logged(row._mapping) for row in await conn.execute(query)]


def _logged(row: Any) -> LoggedDisclosure:
    return LoggedDisclosure(
        id=row["id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        agreement_id=row["agreement_id"],
        agreement_version=int(row["agreement_version"]),
        purpose=row["purpose"],
        partner_id=row["partner_id"],
        lawful_basis=row["lawful_basis"],
        status=row["status"],
        fields_sent=tuple(row["fields_sent"]),
        approver=row["approver"],
        retain_until=row["retain_until"],
    )


async def counts(conn: AsyncConnection, chosen: LogFilter) -> dict[tuple[str, int, str, str], int]:
    """How many disclosures per (agreement, version, purpose, status), counted by the database."""
    c = disclosures.c
    keys = (c.agreement_id, c.agreement_version, c.purpose, c.status)
    query = select(*keys, func.count()).where(*_where(chosen)).group_by(*keys)
    return {(row[0], int(row[1]), row[2], row[3]): int(row[4]) for row in await conn.execute(query)}
