"""The outbox: sealed envelopes waiting to leave, claimed by a relay or worker under a lease.

Rows are written by `disclosures.record_accepted` in the disclosure's own transaction. A relay
(to RabbitMQ) or the embedded queue claims due rows with a lease, so two processes never take
the same row and a crashed claimer's rows come back when the lease runs out. On PostgreSQL the
claim uses FOR UPDATE SKIP LOCKED so claimers never wait on each other; on SQLite the write
transaction already serialises them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store import disclosures, envelope_parts
from gateway.store.database import require_transaction
from gateway.store.disclosure_model import Disclosure
from gateway.store.tables import outbox

PENDING, PUBLISHED, DELIVERED = "pending", "published", "delivered"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One claimed envelope."""

    id: int
    disclosure_id: str
    partner_id: str
    envelope: bytes
    digest: str
    attempts: int


def claim(
    conn: Connection,
    *,
    owner: str,
    now: datetime,
    lease: timedelta,
    limit: int = 100,
    state: str = PENDING,
    partner_id: str | None = None,
    held: Collection[int] = (),
) -> list[OutboxItem]:
    """Lease up to `limit` due rows in `state` to `owner` until now + lease; oldest first.

    `held`: rows the caller still has in hand, never taken again even if their lease ran out
    while a renewal waited for its commit.
    """
    require_transaction(conn)
    due = and_(
        outbox.c.state == state,
        outbox.c.available_at <= now,
        or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < now),
    )
    if partner_id is not None:
        due = and_(due, outbox.c.partner_id == partner_id)
    if held:
        due = and_(due, outbox.c.id.not_in(list(held)))
    query = select(outbox).where(due).order_by(outbox.c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = list(conn.execute(query))
    if not rows:
        return []
    ids = [row.id for row in rows]
    conn.execute(
        update(outbox)
        .where(outbox.c.id.in_(ids))
        .values(lease_owner=owner, lease_until=now + lease, attempts=outbox.c.attempts + 1)
    )
    return [
        OutboxItem(
            r.id, r.disclosure_id, r.partner_id, _envelope(conn, r), r.digest, r.attempts + 1
        )
        for r in rows
    ]


def _envelope(conn: Connection, row: Any) -> bytes:
    if row.parts:
        return envelope_parts.read(conn, row.disclosure_id, row.parts)
    return bytes(row.envelope)


def mark(conn: Connection, item_ids: list[int], *, owner: str, state: str, now: datetime) -> int:
    """Move rows this owner holds to `state` (published or delivered) and drop the lease."""
    values: dict[str, object] = {"state": state, "lease_owner": None, "lease_until": None}
    if state == PUBLISHED:
        values["published_at"] = now
    result = conn.execute(
        update(outbox)
        .where(outbox.c.id.in_(item_ids), outbox.c.lease_owner == owner)
        .values(values)
    )
    return int(result.rowcount)


@dataclass(frozen=True, slots=True)
class Claim:
    """A request to `claim` (for `claim_each`, through the store's group commit)."""

    owner: str
    now: datetime
    lease: timedelta
    limit: int


def claim_each(conn: Connection, claims: Sequence[Claim]) -> list[list[OutboxItem]]:
    """`claim` for each request in turn, in the shared transaction."""
    return [claim(conn, owner=c.owner, now=c.now, lease=c.lease, limit=c.limit) for c in claims]


@dataclass(frozen=True, slots=True)
class Mark:
    """One row to move to `state` (for `mark_each`, the set-wise `mark`)."""

    item_id: int
    owner: str
    state: str
    now: datetime


def mark_each(conn: Connection, marks: Sequence[Mark]) -> list[None]:
    """`mark` for a batch: one UPDATE per (owner, state). A row another owner holds now is
    left alone, as `mark` does."""
    groups: dict[tuple[str, str], list[Mark]] = {}
    for m in marks:
        groups.setdefault((m.owner, m.state), []).append(m)
    for (owner, state), group in groups.items():
        ids = [m.item_id for m in group]
        mark(conn, ids, owner=owner, state=state, now=max(m.now for m in group))
    return [None] * len(marks)


async def release(
    conn: AsyncConnection, item_id: int, *, owner: str, available_at: datetime
) -> bool:
    """Give a row back for another attempt at `available_at` (a retry delay)."""
    result = await conn.execute(
        update(outbox)
        .where(outbox.c.id == item_id, outbox.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None, available_at=available_at)
    )
    return bool(result.rowcount)


async def requeue(conn: AsyncConnection, disclosure_id: str, *, now: datetime) -> bool:
    """Make a disclosure's envelope due again (admin replay); False if it was purged."""
    result = await conn.execute(
        update(outbox)
        .where(outbox.c.disclosure_id == disclosure_id)
        .values(state=PENDING, lease_owner=None, lease_until=None, available_at=now)
    )
    return bool(result.rowcount)


async def lease_owners(conn: AsyncConnection, *, now: datetime) -> list[str]:
    """Every owner holding a lease that has not run out yet."""
    query = (
        select(outbox.c.lease_owner)
        .where(outbox.c.lease_owner.is_not(None), outbox.c.lease_until > now)
        .distinct()
    )
    return [str(owner) for owner in (await conn.execute(query)).scalars()]


async def release_owner(conn: AsyncConnection, owner: str) -> int:
    """Give back every lease of an owner known to be gone (a crashed process); rows stay due."""
    result = await conn.execute(
        update(outbox)
        .where(outbox.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )
    return int(result.rowcount)


async def extend_leases(
    conn: AsyncConnection, item_ids: Sequence[int], *, owner: str, until: datetime
) -> int:
    """Push out the leases this owner still holds on these rows; returns how many it held."""
    if not item_ids:
        return 0
    result = await conn.execute(
        update(outbox)
        .where(outbox.c.id.in_(list(item_ids)), outbox.c.lease_owner == owner)
        .values(lease_until=until)
    )
    return int(result.rowcount)


def due_partners(conn: Connection, now: datetime) -> list[str]:
    """Partners with at least one envelope due now and not leased."""
    query = (
        select(outbox.c.partner_id)
        .where(
            and_(
                outbox.c.state == PENDING,
                outbox.c.available_at <= now,
                or_(outbox.c.lease_until.is_(None), outbox.c.lease_until < now),
            )
        )
        .distinct()
    )
    return [str(p) for p in conn.scalars(query)]


def leased_by_others(conn: Connection, partner_id: str, *, owner: str, now: datetime) -> int:
    """Rows of this partner other claimers hold under a live lease (in flight elsewhere)."""
    query = (
        select(func.count())
        .select_from(outbox)
        .where(
            outbox.c.partner_id == partner_id,
            outbox.c.state == PENDING,
            outbox.c.lease_owner.is_not(None),
            outbox.c.lease_owner != owner,
            outbox.c.lease_until >= now,
        )
    )
    return int(conn.scalar(query) or 0)


def _lock_partner(conn: Connection, partner_id: str) -> None:
    """PostgreSQL: one claimer at a time counts and claims a partner's rows (until commit).

    SQLite needs nothing: its write transactions already run one at a time.
    """
    if conn.dialect.name == "postgresql":
        key = func.hashtext("gatehouse.outbox.partner:" + partner_id)
        conn.execute(select(func.pg_advisory_xact_lock(key)))


@dataclass(frozen=True, slots=True)
class ClaimRound:
    """Claim for `owner` what each partner has room for: `per_partner` across every claimer,
    less the rows other claimers hold and this one's `inflight`."""

    owner: str
    now: datetime
    lease: timedelta
    per_partner: int
    inflight: Mapping[str, int]
    held: frozenset[int] = frozenset()  # rows the claimer still has in hand
    settled: tuple[Mark, ...] = ()  # rows the claimer finished with, marked before it claims


@dataclass(frozen=True, slots=True)
class Claimed:
    """A leased outbox row and its disclosure as stored at the claim (None if there is none)."""

    item: OutboxItem
    disclosure: Disclosure | None


def claim_rounds(conn: Connection, rounds: Sequence[ClaimRound]) -> list[list[Claimed]]:
    """Claim due rows, partner by partner, and read their disclosures in the same transaction.

    Runs through the store's group commit, so a claim shares its commit with the outcomes being
    recorded at the same moment, and the worker need not read each disclosure again. The rows a
    claimer finished with since its last round are marked in the same transaction. Partners are
    locked in name order, so two claimers never wait on each other in a cycle.
    """
    answers: list[list[Claimed]] = []
    settled = [mark for round_ in rounds for mark in round_.settled]
    if settled:
        mark_each(conn, settled)
    for round_ in rounds:
        items: list[OutboxItem] = []
        for partner in sorted(due_partners(conn, round_.now)):
            mine = round_.inflight.get(partner, 0)
            if mine >= round_.per_partner:
                continue
            _lock_partner(conn, partner)
            others = leased_by_others(conn, partner, owner=round_.owner, now=round_.now)
            room = round_.per_partner - mine - others
            if room > 0:
                items += claim(
                    conn,
                    owner=round_.owner,
                    now=round_.now,
                    lease=round_.lease,
                    limit=room,
                    partner_id=partner,
                    held=round_.held,
                )
        found = disclosures.get_many(conn, [i.disclosure_id for i in items]) if items else []
        answers.append([Claimed(item, d) for item, d in zip(items, found, strict=True)])
    return answers


async def pending_count(conn: AsyncConnection) -> int:
    """Outbox rows not yet published or delivered (the outbox depth gauge)."""
    return int(
        await conn.scalar(select(func.count()).select_from(outbox).where(outbox.c.state == PENDING))
        or 0
    )
