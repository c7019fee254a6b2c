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
so entries are chained in the transaction that appends them (`chains_inline`); the sealer signs
every checkpoint due.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit_entry import (
    CHECKPOINT_EVERY,
    CHECKPOINT_MAX_AGE,
    CHECKPOINT_TYP,
    SEAL_BATCH,
    Actor,
    CheckpointSigner,
    Head,
    PendingEntry,
    checkpoint_payload,
    link,
    pending_row,
)
from gateway.store.database import Store
from gateway.store.multi_insert import Writes, insert_all_sync
from gateway.store.tables import (
    audit_checkpoints,
    audit_head,
    audit_log,
    audit_pending,
    disclosure_events,
)

CHAIN_LOCK = 0x6761_7465_0002  # pg advisory lock key of the audit chain


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


async def last_checkpoint(conn: AsyncConnection) -> int:
    """The seq of the newest checkpoint, 0 if none."""
    return await conn.run_sync(last_checkpoint_seq)


def last_checkpoint_seq(conn: Connection) -> int:
    """The seq of the newest checkpoint, 0 if none."""
    value = conn.scalar(select(func.max(audit_checkpoints.c.seq)))
    return int(value or 0)


async def oldest_unchecked_at(conn: AsyncConnection) -> datetime | None:
    """The time of the first chained entry after the newest checkpoint, None if there is none."""
    return await conn.run_sync(oldest_unchecked_at_sync)


def oldest_unchecked_at_sync(conn: Connection) -> datetime | None:
    """`oldest_unchecked_at` on a sync connection."""
    seq = last_checkpoint_seq(conn) + 1
    value = conn.scalar(select(audit_log.c.at).where(audit_log.c.seq == seq))
    return value if isinstance(value, datetime) else None


async def latest_activity_before(conn: AsyncConnection, before: datetime) -> datetime | None:
    """The newest disclosure event before `before`: each is audited, so a checkpoint is due."""
    query = (
        select(disclosure_events.c.at)
        .where(disclosure_events.c.at < before)
        .order_by(disclosure_events.c.at.desc())
        .limit(1)
    )
    value = await conn.scalar(query)
    return value if isinstance(value, datetime) else None


@asynccontextmanager
async def snapshot(store: Store) -> AsyncIterator[AsyncConnection]:
    """A read transaction that sees one state of the chain, however long it is walked."""
    async with store.engine.connect() as conn:
        if conn.dialect.name == "postgresql":  # so a live sealer cannot confuse the walk
            await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            yield conn


async def read_entries(conn: AsyncConnection, after_seq: int, limit: int) -> list[Any]:
    """A page of the chain in seq order (keyset pagination, constant memory)."""
    query = select(audit_log).where(audit_log.c.seq > after_seq).order_by(audit_log.c.seq)
    return list(await conn.execute(query.limit(limit)))


async def read_checkpoints(conn: AsyncConnection, *, after: int = 0) -> list[Any]:
    """Every checkpoint past seq `after`, in seq order."""
    query = select(audit_checkpoints).where(audit_checkpoints.c.seq > after)
    return list(await conn.execute(query.order_by(audit_checkpoints.c.seq)))


async def pending_summary(conn: AsyncConnection) -> tuple[int, datetime | None]:
    """How many entries await sealing, and the oldest one's time."""
    row = (await conn.execute(select(func.count(), func.min(audit_pending.c.at)))).one()
    oldest = row[1]
    if isinstance(oldest, str):  # SQLite aggregates lose the column type
        oldest = datetime.fromisoformat(oldest)
    if oldest is not None and oldest.tzinfo is None:  # stored as UTC
        oldest = oldest.replace(tzinfo=UTC)
    return int(row[0]), oldest


async def append(
    conn: AsyncConnection,
    actor: Actor,
    action: str,
    *,
    at: datetime,
    targets: Mapping[str, str] | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append an entry in the caller's transaction (`append_rows` says when it is chained)."""
    await append_many(conn, [(actor, action, targets or {}, details or {})], at=at)


async def append_many(
    conn: AsyncConnection,
    entries: Sequence[PendingEntry],
    *,
    at: datetime,
) -> None:
    """Append several entries in one statement (e.g. a retention batch)."""
    rows = [
        pending_row(actor, action, at=at, targets=t, details=d) for actor, action, t, d in entries
    ]
    await append_rows(conn, rows)


def chains_inline(conn: AsyncConnection | Connection) -> bool:
    """True on SQLite: entries are chained in the transaction that appends them.

    Every SQLite write transaction here begins IMMEDIATE, so it already holds the database's one
    write lock, which makes reading and moving the chain head safe; on PostgreSQL entries are
    staged in `audit_pending` for the sealer.
    """
    return conn.dialect.name == "sqlite"


async def append_rows(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append `pending_row` rows: chained now (`chains_inline`), or staged for the sealer."""
    await conn.run_sync(append_rows_sync, rows)


def append_rows_sync(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """`append_rows` on a sync connection."""
    if chains_inline(conn):
        links, head = link(read_head_sync(conn), rows)
        write_links_sync(conn, (), links, head)
    else:
        insert_pending(conn, rows)


async def insert_with_entries(
    conn: AsyncConnection, writes: Writes, rows: Sequence[Mapping[str, Any]]
) -> None:
    """`insert_all(writes)` and `append_rows(rows)` in the caller's transaction."""
    await conn.run_sync(insert_with_entries_sync, writes, rows)


def insert_with_entries_sync(
    conn: Connection, writes: Writes, rows: Sequence[Mapping[str, Any]]
) -> None:
    """`insert_with_entries` on a sync connection.

    On PostgreSQL the pending rows join the other inserts, which `insert_all` may send as a
    single statement.
    """
    if chains_inline(conn):
        insert_all_sync(conn, writes)
        append_rows_sync(conn, rows)
    else:
        insert_all_sync(conn, [*writes, (audit_pending, rows)])


async def checkpoint_head(conn: AsyncConnection, signer: CheckpointSigner, *, at: datetime) -> int:
    """Seal everything pending and sign a checkpoint at the head; returns its seq (0: empty).

    Signs nothing when the head already has a checkpoint.
    """
    return await conn.run_sync(_checkpoint_head_sync, signer, at)


def _checkpoint_head_sync(conn: Connection, signer: CheckpointSigner, at: datetime) -> int:
    while seal_sync(conn, at=at, signer=signer) == SEAL_BATCH:
        pass
    head = read_head_sync(conn)
    if head.seq and last_checkpoint_seq(conn) != head.seq:
        _sign_checkpoint(conn, signer, head.seq, head.hash, at)
    return head.seq


async def seal(
    conn: AsyncConnection,
    *,
    at: datetime,
    signer: CheckpointSigner | None = None,
    checkpoint_every: int = CHECKPOINT_EVERY,
    limit: int = SEAL_BATCH,
) -> int:
    """Chain pending entries (up to `limit`) and sign the checkpoints due; returns how many.

    A checkpoint is due at every multiple of `checkpoint_every` past the last one signed,
    whoever chained the entry there (this call, or an inline append on SQLite).
    """
    return await conn.run_sync(
        seal_sync, at=at, signer=signer, checkpoint_every=checkpoint_every, limit=limit
    )


@dataclass(frozen=True, slots=True)
class SealRequest:
    """A request to seal (for `seal_each`, through the store's group commit)."""

    at: datetime
    signer: CheckpointSigner | None


def seal_each(conn: Connection, requests: Sequence[SealRequest]) -> list[int]:
    """`seal_sync` for each request in turn, in the shared transaction."""
    return [seal_sync(conn, at=r.at, signer=r.signer) for r in requests]


def seal_sync(
    conn: Connection,
    *,
    at: datetime,
    signer: CheckpointSigner | None = None,
    checkpoint_every: int = CHECKPOINT_EVERY,
    limit: int = SEAL_BATCH,
) -> int:
    """`seal` on a sync connection: the whole seal in one hand-off to the driver's thread."""
    lock_chain(conn)
    pending = read_pending(conn, limit)
    if pending:
        links, head = link(read_head_sync(conn), pending)
        write_links_sync(conn, [row["id"] for row in pending], links, head)
    if signer is not None and checkpoint_every:
        _sign_due_checkpoints(conn, signer, at, checkpoint_every)
    return len(pending)


def _sign_due_checkpoints(
    conn: Connection, signer: CheckpointSigner, at: datetime, every: int
) -> None:
    """At every multiple of `every`, and at the head once the oldest entry after the newest
    checkpoint is CHECKPOINT_MAX_AGE old: what `audit verify` holds the sealer to."""
    head = read_head_sync(conn)
    first = (last_checkpoint_seq(conn) // every + 1) * every
    for seq in range(first, head.seq + 1, every):
        _sign_checkpoint(conn, signer, seq, hash_at(conn, seq), at)
    oldest = oldest_unchecked_at_sync(conn)
    if oldest is not None and oldest <= at - CHECKPOINT_MAX_AGE:
        _sign_checkpoint(conn, signer, head.seq, head.hash, at)


def _sign_checkpoint(
    conn: Connection, signer: CheckpointSigner, seq: int, hash_: str, at: datetime
) -> None:
    token = signer.sign_compact(checkpoint_payload(seq, hash_, at), typ=CHECKPOINT_TYP)
    insert_checkpoint(conn, seq=seq, hash_=hash_, at=at, kid=signer.kid, token=token)
