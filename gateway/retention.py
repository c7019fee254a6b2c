"""Retention: destroy envelopes and held records past `retain_until`, then old metadata rows.

Two stages, each in small batches with one short transaction per batch, so it can run while the
service is live: (1) for receipted or failed disclosures past their agreement's `retain_until`,
delete the outbox envelope and any held record and stamp `envelope_purged_at`; (2) delete the
metadata row itself (with its events, receipts and approvals) once it is older than the council's
records schedule. Every purge is audited, one entry per disclosure; the audit log itself is
never purged. On PostgreSQL batches lock their rows with SKIP LOCKED, so a concurrent run or a
worker holding a row is stepped around, never waited on or doubled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway import audit
from gateway.store.database import Store
from gateway.store.disclosure_model import Status
from gateway.store.tables import disclosures, held_records, idempotency_keys, outbox

PURGEABLE = (str(Status.RECEIPTED), str(Status.FAILED))
FINISHED = (*PURGEABLE, str(Status.DENIED), str(Status.REJECTED))
IDEMPOTENCY_TTL = timedelta(days=1)
BATCH = 500


@dataclass(slots=True)
class RetentionReport:
    """What a run purged (or, with dry_run, would purge): disclosure ids and counts."""

    dry_run: bool
    envelopes_purged: list[str] = field(default_factory=list)
    metadata_deleted: list[str] = field(default_factory=list)
    idempotency_keys_deleted: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for `--json`."""
        return asdict(self)


async def run(
    store: Store,
    *,
    now: datetime,
    metadata_retention: timedelta,
    actor: audit.Actor = audit.SYSTEM,
    dry_run: bool = False,
    batch: int = BATCH,
) -> RetentionReport:
    """Purge what is due at `now`; returns what was (or would be) purged."""
    report = RetentionReport(dry_run=dry_run)
    envelope_due = and_(
        disclosures.c.retain_until <= now,
        disclosures.c.status.in_(PURGEABLE),
        disclosures.c.envelope_purged_at.is_(None),
    )
    metadata_due = and_(
        disclosures.c.created_at <= now - metadata_retention, disclosures.c.status.in_(FINISHED)
    )
    if dry_run:
        async with store.read() as conn:
            report.envelopes_purged = await _due(conn, envelope_due, limit=None)
            report.metadata_deleted = await _due(conn, metadata_due, limit=None)
        return report
    while ids := await _batch(store, envelope_due, batch, _purge_envelopes, now=now, actor=actor):
        report.envelopes_purged += ids
    while ids := await _batch(store, metadata_due, batch, _delete_metadata, now=now, actor=actor):
        report.metadata_deleted += ids
    async with store.transaction() as conn:
        result = await conn.execute(
            delete(idempotency_keys).where(idempotency_keys.c.created_at < now - IDEMPOTENCY_TTL)
        )
        report.idempotency_keys_deleted = int(result.rowcount)
    return report


async def _due(conn: AsyncConnection, where: ColumnElement[bool], limit: int | None) -> list[str]:
    query = select(disclosures.c.id).where(where).order_by(disclosures.c.id).limit(limit)
    if limit is not None and conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [str(row.id) for row in await conn.execute(query)]


async def _batch(
    store: Store,
    where: ColumnElement[bool],
    size: int,
    action: Any,
    *,
    now: datetime,
    actor: audit.Actor,
) -> list[str]:
    async with store.transaction() as conn:
        ids = await _due(conn, where, size)
        if ids:
            await action(conn, ids, now, actor)
        return ids


async def _purge_envelopes(
    conn: AsyncConnection, ids: list[str], now: datetime, actor: audit.Actor
) -> None:
    await conn.execute(delete(outbox).where(outbox.c.disclosure_id.in_(ids)))
    await conn.execute(delete(held_records).where(held_records.c.disclosure_id.in_(ids)))
    await conn.execute(
        update(disclosures).where(disclosures.c.id.in_(ids)).values(envelope_purged_at=now)
    )
    await audit.append_many(conn, _entries(actor, "retention.envelope_purged", ids), at=now)


async def _delete_metadata(
    conn: AsyncConnection, ids: list[str], now: datetime, actor: audit.Actor
) -> None:
    # events, outbox, receipts, approvals and held records go with it (ON DELETE CASCADE)
    await conn.execute(delete(disclosures).where(disclosures.c.id.in_(ids)))
    await audit.append_many(conn, _entries(actor, "retention.metadata_deleted", ids), at=now)


def _entries(actor: audit.Actor, action: str, ids: list[str]) -> list[audit.PendingEntry]:
    return [(actor, action, {"disclosure": i}, {}) for i in ids]
