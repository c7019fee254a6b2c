"""SQL for the audit chain: pending appends, the sealer's lock and link step, and chain reads.

Why two tables. Writers append to `audit_pending` inside their own transaction with no lock, so
sixteen concurrent pipelines never queue behind one another on the chain head. A sealer then
takes the chain lock (`pg_advisory_xact_lock` on PostgreSQL; the BEGIN IMMEDIATE write lock on
SQLite), reads every committed pending entry in id order, gives each the next `seq`, chains
`prev_hash -> hash`, inserts them into the append-only `audit_log`, deletes exactly those pending
rows, moves the `audit_head` row and signs a checkpoint at every multiple of N, all in one
transaction. So one chain link is still one entry, but one lock acquisition and one commit cover
a whole batch: that is how appends from many processes form a single valid chain without capping
the pipeline. The sealer must run in READ COMMITTED so that each statement after the lock sees
what the previous sealer committed.

On SQLite the write lock that every write transaction takes first is already that chain lock,
so the SQLite writer thread (accepted disclosures) chains its entries where it appends them
(`gateway.audit.chains_inline`); the sealer chains the rest and signs every checkpoint due.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.tables import audit_checkpoints, audit_head, audit_log, audit_pending

CHAIN_LOCK = 0x6761_7465_0002  # pg advisory lock key of the audit chain


@dataclass(frozen=True, slots=True)
class Head:
    """Where the chain ends: the last sealed seq and its hash."""

    seq: int
    hash: str


def insert_pending(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Stage entries in the caller's transaction; they commit or roll back with it."""
    conn.execute(insert(audit_pending), list(rows))


def lock_chain(conn: Connection) -> None:
    """Serialise sealers until this transaction ends (SQLite's write lock already does)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CHAIN_LOCK})


async def read_head(conn: AsyncConnection) -> Head:
    """The chain head row."""
    return await conn.run_sync(read_head_sync)


def read_head_sync(conn: Connection) -> Head:
    """`read_head` on a sync connection."""
    row = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).one()
    return Head(int(row.seq), str(row.hash))


def read_pending(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """Committed pending entries in the order they will be chained."""
    query = select(audit_pending).order_by(audit_pending.c.id).limit(limit)
    return [dict(row._mapping) for row in conn.execute(query)]


async def write_links(
    conn: AsyncConnection, ids: Sequence[int], entries: Sequence[Mapping[str, Any]], head: Head
) -> None:
    """Insert chained entries, drop exactly the pending rows they came from, move the head."""
    await conn.run_sync(write_links_sync, ids, entries, head)


def write_links_sync(
    conn: Connection, ids: Sequence[int], entries: Sequence[Mapping[str, Any]], head: Head
) -> None:
    """`write_links` on a sync connection."""
    if not entries:
        return
    conn.execute(insert(audit_log), list(entries))
    if ids:
        conn.execute(
            delete(audit_pending).where(audit_pending.c.id.in_(bindparam("ids", expanding=True))),
            {"ids": list(ids)},
        )
    conn.execute(update(audit_head).values(seq=head.seq, hash=head.hash))


def insert_checkpoint(
    conn: Connection, *, seq: int, hash_: str, at: datetime, kid: str, token: str
) -> None:
    """Store one signed checkpoint."""
    values = {"seq": seq, "hash": hash_, "at": at, "kid": kid, "token": token}
    conn.execute(insert(audit_checkpoints), values)


def hash_at(conn: Connection, seq: int) -> str:
    """The hash of the chained entry at `seq`."""
    return str(conn.scalar(select(audit_log.c.hash).where(audit_log.c.seq == seq)))


def last_checkpoint_seq(conn: Connection) -> int:
    """The seq of the newest checkpoint, 0 if none."""
    value = conn.scalar(select(func.max(audit_checkpoints.c.seq)))
    return int(value or 0)


async def read_entries(conn: AsyncConnection, after_seq: int, limit: int) -> list[Any]:
    """A page of the chain in seq order (keyset pagination, constant memory)."""
    query = select(audit_log).where(audit_log.c.seq > after_seq).order_by(audit_log.c.seq)
    return list(await conn.execute(query.limit(limit)))


async def read_checkpoints(conn: AsyncConnection) -> list[Any]:
    """Every checkpoint in seq order."""
    return list(await conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.seq)))


async def pending_summary(conn: AsyncConnection) -> tuple[int, datetime | None]:
    """How many entries await sealing, and the oldest one's time."""
    row = (await conn.execute(select(func.count(), func.min(audit_pending.c.at)))).one()
    oldest = row[1]
    if isinstance(oldest, str):  # SQLite aggregates lose the column type
        oldest = datetime.fromisoformat(oldest)
    if oldest is not None and oldest.tzinfo is None:  # stored as UTC
        oldest = oldest.replace(tzinfo=UTC)
    return int(row[0]), oldest
