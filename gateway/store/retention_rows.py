"""The rows retention removes: envelopes and held records past `retain_until`, disclosure records
past both `retain_until` and the records schedule (a notice's record goes with its delivery
record), notices never sent past both, and old idempotency keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.disclosure_model import Status
from gateway.store.tables import (
    disclosures,
    held_records,
    idempotency_keys,
    outbox,
    subject_notices,
)

PURGEABLE = (str(Status.RECEIPTED), str(Status.FAILED))
FINISHED = (*PURGEABLE, str(Status.DENIED), str(Status.REJECTED))


async def envelopes_due(conn: AsyncConnection, now: datetime, limit: int | None) -> list[str]:
    """Finished disclosures past `retain_until` whose envelope is still kept."""
    due = and_(
        disclosures.c.retain_until <= now,
        disclosures.c.status.in_(PURGEABLE),
        disclosures.c.envelope_purged_at.is_(None),
    )
    return await _ids(conn, due, limit)


async def metadata_due(
    conn: AsyncConnection, *, now: datetime, cutoff: datetime, limit: int | None
) -> list[str]:
    """Finished disclosures made before `cutoff` (the records schedule) and past `retain_until`.

    The record answers "who has my data" and Article 19 notices for as long as the recipient may
    hold the data, so it outlives the schedule where the agreement's retention is longer.
    """
    due = and_(
        disclosures.c.created_at <= cutoff,
        disclosures.c.retain_until <= now,
        disclosures.c.status.in_(FINISHED),
    )
    return await _ids(conn, due, limit)


async def kept_past_schedule(conn: AsyncConnection, *, now: datetime, cutoff: datetime) -> int:
    """Finished disclosure records past the schedule, kept because `retain_until` is later."""
    kept = and_(
        disclosures.c.created_at <= cutoff,
        disclosures.c.retain_until > now,
        disclosures.c.status.in_(FINISHED),
    )
    return int(await conn.scalar(select(func.count()).select_from(disclosures).where(kept)) or 0)


async def _ids(conn: AsyncConnection, where: ColumnElement[bool], limit: int | None) -> list[str]:
    query = select(disclosures.c.id).where(where).order_by(disclosures.c.id).limit(limit)
    if limit is not None and conn.dialect.name == "postgresql":
        # A concurrent run, or a worker holding a row, is stepped around, never waited on.
        query = query.with_for_update(skip_locked=True)
    return [str(row.id) for row in await conn.execute(query)]


async def purge_envelopes(conn: AsyncConnection, ids: Sequence[str], now: datetime) -> None:
    """Delete the envelopes and held records; stamp `envelope_purged_at`."""
    await conn.execute(delete(outbox).where(outbox.c.disclosure_id.in_(ids)))
    await conn.execute(delete(held_records).where(held_records.c.disclosure_id.in_(ids)))
    await conn.execute(
        update(disclosures).where(disclosures.c.id.in_(ids)).values(envelope_purged_at=now)
    )


async def delete_metadata(conn: AsyncConnection, ids: Sequence[str]) -> None:
    """Delete the disclosure rows; events, outbox, receipts, approvals go with them (CASCADE),
    and so does the notice record of a delivered notice (same id)."""
    await conn.execute(delete(subject_notices).where(subject_notices.c.id.in_(ids)))
    await conn.execute(delete(disclosures).where(disclosures.c.id.in_(ids)))


async def unsent_notices_due(
    conn: AsyncConnection, *, now: datetime, cutoff: datetime, limit: int | None
) -> list[str]:
    """Notices never sealed (no delivery record) past the schedule and their `retain_until`."""
    due = and_(
        subject_notices.c.not_sent.is_not(None),
        subject_notices.c.created_at <= cutoff,
        or_(subject_notices.c.retain_until.is_(None), subject_notices.c.retain_until <= now),
    )
    query = select(subject_notices.c.id).where(due).order_by(subject_notices.c.id).limit(limit)
    if limit is not None and conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [str(row.id) for row in await conn.execute(query)]


async def delete_notices(conn: AsyncConnection, ids: Sequence[str]) -> None:
    """Delete notice records (those never sent: nothing else refers to them)."""
    await conn.execute(delete(subject_notices).where(subject_notices.c.id.in_(ids)))


async def delete_idempotency_keys(conn: AsyncConnection, before: datetime) -> int:
    """Forget idempotency keys made before `before`; returns how many."""
    result = await conn.execute(
        delete(idempotency_keys).where(idempotency_keys.c.created_at < before)
    )
    return int(result.rowcount)
