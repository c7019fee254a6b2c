"""Disclosures a delivery gave up on without recording it: what the dead-letter reconciler reads.

A disclosure is stranded when it is still `queued` although nothing will deliver it: its copy
is parked in a dead-letter queue, its outbox row is `dead`, or its row was published long ago
and no attempt has been due since.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.disclosure_model import Status
from gateway.store.tables import disclosure_events, disclosures, outbox


async def still_queued(conn: AsyncConnection, ids: Collection[str]) -> set[str]:
    """Which of these disclosures are `queued` now."""
    if not ids:
        return set()
    query = select(disclosures.c.id).where(
        disclosures.c.id.in_(list(ids)), disclosures.c.status == str(Status.QUEUED)
    )
    return set(await conn.scalars(query))


async def replay_counts(conn: AsyncConnection, ids: Collection[str]) -> dict[str, int]:
    """How often each of these disclosures was replayed by an administrator."""
    if not ids:
        return {}
    events = disclosure_events.c
    query = (
        select(events.disclosure_id, func.count())
        .where(events.disclosure_id.in_(list(ids)), events.type == "replayed")
        .group_by(events.disclosure_id)
    )
    return {row[0]: int(row[1]) for row in await conn.execute(query)}


async def dead_but_queued(conn: AsyncConnection, *, limit: int) -> list[str]:
    """Disclosures still `queued` whose envelope the outbox holds as `dead`."""
    query = (
        select(disclosures.c.id)
        .join(outbox, outbox.c.disclosure_id == disclosures.c.id)
        .where(outbox.c.state == "dead", disclosures.c.status == str(Status.QUEUED))
        .order_by(disclosures.c.id)
        .limit(limit)
    )
    return list(await conn.scalars(query))


async def published_and_quiet(conn: AsyncConnection, *, before: datetime, limit: int) -> list[str]:
    """Disclosures still `queued`, published to the broker, with no attempt due since `before`.

    The last due attempt is the last retry's `next_attempt_at`, else the publication.
    """
    last_due = func.coalesce(disclosures.c.next_attempt_at, outbox.c.published_at)
    query = (
        select(disclosures.c.id)
        .join(outbox, outbox.c.disclosure_id == disclosures.c.id)
        .where(
            outbox.c.state == "published",
            disclosures.c.status == str(Status.QUEUED),
            last_due < before,
        )
        .order_by(last_due)
        .limit(limit)
    )
    return list(await conn.scalars(query))
