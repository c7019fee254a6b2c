"""The tamper-evident audit log: hash-chained entries, signed checkpoints, and verification.

Each entry's hash is SHA-256 over a canonical JSON encoding of its seq, time, actor, action,
targets, details and the previous entry's hash, so editing, deleting, inserting or reordering
any entry breaks the chain. Checkpoints sign (seq, hash) with the council key every N entries
and on demand, so rewriting the chain wholesale is caught too. Details carry names and codes
only, never personal values. How appends stay fast across processes: see gateway.store.audit_log.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson
import structlog
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store import audit_log as sql
from gateway.store.database import Store
from gateway.store.multi_insert import Writes, insert_all_sync
from gateway.store.tables import audit_pending

GENESIS = "0" * 64
CHECKPOINT_EVERY = 1000
SEAL_BATCH = 5000
# While another process seals (AuditSealer.delegated), how often this one checks that it does,
# and how long an entry may wait before this one seals it after all.
OVERDUE_CHECK_SECONDS = 1.0
OVERDUE_SECONDS = 2.0
CHECKPOINT_TYP = "gatehouse-audit-checkpoint+jws"
MAX_DETAIL_TEXT = 200  # details are codes and names; a long string smells of free text

log = structlog.get_logger(__name__)


class ActorKind(enum.StrEnum):
    """Who did it: an internal client system, an admin user, a partner, or the gateway itself."""

    CLIENT = "client"
    ADMIN = "admin"
    PARTNER = "partner"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class Actor:
    """The actor of an audited action (staff and system identifiers, never a data subject)."""

    kind: ActorKind
    name: str


SYSTEM = Actor(ActorKind.SYSTEM, "gatehouse")
PendingEntry = tuple[Actor, str, Mapping[str, str], Mapping[str, Any]]
"""(actor, action, targets, details) for `append_many`."""


class CheckpointSigner(Protocol):
    """Signs checkpoint payloads with the council key (the keyring implements this)."""

    @property
    def kid(self) -> str:
        """The signing key's id."""
        ...

    def sign_compact(self, payload: bytes, *, typ: str | None = ...) -> str:
        """A compact JWS over `payload` with header {alg, kid, typ}."""
        ...


class CheckpointVerifier(Protocol):
    """Verifies a checkpoint's compact JWS against the council's public keys."""

    def verify_compact(self, token: str) -> bytes:
        """The verified payload; raises for a bad signature or an unknown key."""
        ...


_ORJSON_CANONICAL = (
    orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)


def canonical(value: Any) -> str:
    """The one JSON spelling that is hashed: sorted keys, no spaces, ASCII only.

    That spelling is `json.dumps(value, sort_keys=True, separators=(",", ":"),
    ensure_ascii=True)`, which every chain so far was hashed with. orjson writes the same bytes
    ten times faster for what audit entries hold (ASCII names, codes and integers); for anything
    else (non-ASCII text, DEL, integers past 64 bits, keys that are not strings) it differs or
    refuses, and the standard library spells it instead.
    """
    try:
        fast = orjson.dumps(value, option=_ORJSON_CANONICAL)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        pass
    else:
        if fast.isascii() and b"\x7f" not in fast:  # the json module escapes DEL; orjson not
            return fast.decode()
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def entry_hash(
    *,
    seq: int,
    at: datetime,
    actor_kind: str,
    actor_name: str,
    action: str,
    targets: str,
    details: str,
    prev_hash: str,
) -> str:
    """SHA-256 over every field of an entry, including the previous entry's hash."""
    fields = [seq, _iso(at), actor_kind, actor_name, action, targets, details, prev_hash]
    return hashlib.sha256(canonical(fields).encode()).hexdigest()


def checkpoint_payload(seq: int, hash_: str, at: datetime) -> bytes:
    """What a checkpoint signs."""
    return canonical(
        {"chain": "gatehouse-audit", "seq": seq, "hash": hash_, "at": _iso(at)}
    ).encode()


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def _check_details(value: Any, path: str = "details") -> None:
    """Refuse what cannot be a name or a code, so free text does not slip into the log."""
    # Strings first, and lists of short strings without a call per item: details are mostly
    # lists of field paths and codes, and the Mapping check is the slow one.
    if isinstance(value, str):
        if len(value) > MAX_DETAIL_TEXT:
            raise ValueError(f"audit {path}: text too long for a name or code")
    elif isinstance(value, list | tuple):
        for item in value:
            if not isinstance(item, str) or len(item) > MAX_DETAIL_TEXT:
                _check_details(item, path)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_details(item, f"{path}.{key}")
    elif value is not None and not isinstance(value, bool | int):
        raise ValueError(f"audit {path}: only strings, integers, booleans, lists and maps")


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
    """True on SQLite's writer thread, where entries are chained in the appending transaction.

    Every SQLite write transaction here begins IMMEDIATE, so it already holds the database's one
    write lock, in whatever process: reading the chain head and moving it cannot race, which is
    all the pending table and the sealer exist for. On the writer thread (`Store.submit_sync`)
    the three extra statements cost next to nothing, and writing each entry once instead of
    three times (pending, read back, chained) takes a fifth off the store's cost per accepted
    disclosure. Through aiosqlite each statement is three thread hand-offs, so there, as on
    PostgreSQL, entries are staged in `audit_pending` for the sealer, which also signs the
    checkpoints due wherever the entries were chained.
    """
    return conn.dialect.name == "sqlite"


async def append_rows(conn: AsyncConnection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Append `pending_row` rows: chained now (`chains_inline`), or staged for the sealer."""
    await conn.run_sync(append_rows_sync, rows)


def append_rows_sync(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """`append_rows` on a sync connection."""
    if chains_inline(conn):
        links, head = _link(sql.read_head_sync(conn), rows)
        sql.write_links_sync(conn, (), links, head)
    else:
        sql.insert_pending(conn, rows)


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


def pending_row(
    actor: Actor,
    action: str,
    *,
    at: datetime,
    targets: Mapping[str, str] | None = None,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An entry's row before it is chained, for callers that batch it with their own inserts."""
    _check_details(details or {})
    return {
        "at": at,
        "actor_kind": str(actor.kind),
        "actor_name": actor.name,
        "action": action,
        "targets": canonical(dict(targets or {})),
        "details": canonical(dict(details or {})),
    }


_ENTRY_FIELDS = ("at", "actor_kind", "actor_name", "action", "targets", "details")


def _link(
    head: sql.Head, rows: Sequence[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], sql.Head]:
    """Chain `rows` after `head`: each gets the next seq, the previous hash and its own hash."""
    seq, prev, links = head.seq, head.hash, []
    for row in rows:
        seq += 1
        fields = {k: row[k] for k in _ENTRY_FIELDS}
        digest = entry_hash(seq=seq, prev_hash=prev, **fields)
        links.append({"seq": seq, **fields, "prev_hash": prev, "hash": digest})
        prev = digest
    return links, sql.Head(seq, prev)


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


def seal_sync(
    conn: Connection,
    *,
    at: datetime,
    signer: CheckpointSigner | None = None,
    checkpoint_every: int = CHECKPOINT_EVERY,
    limit: int = SEAL_BATCH,
) -> int:
    """`seal` on a sync connection (the background sealer's, on SQLite's writer thread)."""
    sql.lock_chain(conn)
    pending = sql.read_pending(conn, limit)
    if pending:
        links, head = _link(sql.read_head_sync(conn), pending)
        sql.write_links_sync(conn, [row["id"] for row in pending], links, head)
    if signer is not None and checkpoint_every:
        _sign_due_checkpoints(conn, signer, at, checkpoint_every)
    return len(pending)


def _sign_due_checkpoints(
    conn: Connection, signer: CheckpointSigner, at: datetime, every: int
) -> None:
    head = sql.read_head_sync(conn)
    first = (sql.last_checkpoint_seq(conn) // every + 1) * every
    for seq in range(first, head.seq + 1, every):
        _sign_checkpoint(conn, signer, seq, sql.hash_at(conn, seq), at)


def _sign_checkpoint(
    conn: Connection, signer: CheckpointSigner, seq: int, hash_: str, at: datetime
) -> None:
    token = signer.sign_compact(checkpoint_payload(seq, hash_, at), typ=CHECKPOINT_TYP)
    sql.insert_checkpoint(conn, seq=seq, hash_=hash_, at=at, kid=signer.kid, token=token)


async def record(
    store: Store,
    actor: Actor,
    action: str,
    *,
    at: datetime,
    targets: Mapping[str, str] | None = None,
    details: Mapping[str, Any] | None = None,
    signer: CheckpointSigner | None = None,
) -> None:
    """Standalone append (admin actions): appended and chained before this returns."""
    async with store.transaction() as conn:
        await append(conn, actor, action, at=at, targets=targets, details=details)
        await seal(conn, at=at, signer=signer)


async def checkpoint(store: Store, signer: CheckpointSigner, *, at: datetime) -> int:
    """Seal what is pending and sign a checkpoint at the head now; returns its seq (0: empty)."""

    def sign_head(conn: Connection) -> int:
        while seal_sync(conn, at=at, signer=signer) == SEAL_BATCH:
            pass
        head = sql.read_head_sync(conn)
        if head.seq == 0 or sql.last_checkpoint_seq(conn) == head.seq:
            return head.seq
        _sign_checkpoint(conn, signer, head.seq, head.hash, at)
        return head.seq

    async def work(conn: AsyncConnection) -> int:
        return await conn.run_sync(sign_head)

    return await store.write(work)


class AuditSealer:
    """Background task that chains pending entries every `interval` seconds until stopped."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], datetime],
        signer: CheckpointSigner | None = None,
        interval: float = 0.1,
    ) -> None:
        self._store, self._clock, self._signer, self._interval = store, clock, signer, interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # While this says yes, another process seals (gateway serve's writer process) and the
        # periodic runs here are skipped; when it stops saying so, they resume.
        self.delegated: Callable[[], bool] | None = None

    async def seal_now(self) -> int:
        """Seal everything committed so far; returns how many entries were chained."""
        total = 0
        while True:
            # One hand-off on SQLite (the writer's thread), not a statement at a time through a
            # loop that is busy: under load that held the write lock for tens of milliseconds.
            seal_all = functools.partial(seal_sync, at=self._clock(), signer=self._signer)

            async def work(conn: AsyncConnection, seal_all: Any = seal_all) -> int:
                return int(await conn.run_sync(seal_all))

            sealed = await self._store.write(work)
            total += sealed
            if sealed < SEAL_BATCH:
                return total

    def nudge(self) -> None:
        """Seal soon rather than at the next tick."""
        self._wake.set()

    def start(self) -> None:
        """Run in the background (call from a running event loop)."""
        self._task = asyncio.create_task(self._run(), name="audit-sealer")

    async def stop(self) -> None:
        """Stop, then seal whatever is left so nothing stays unchained after shutdown."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.seal_now()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_check = loop.time() + OVERDUE_CHECK_SECONDS
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            try:
                if self.delegated is not None and self.delegated():
                    # Another process seals; check now and then (a read, no write lock) that it
                    # does, and step in if work has been left waiting.
                    if loop.time() < next_check:
                        continue
                    next_check = loop.time() + OVERDUE_CHECK_SECONDS
                    if not await self._overdue():
                        continue
                    log.warning("audit_sealer_stepping_in")
                await self.seal_now()
            except (SQLAlchemyError, OSError) as exc:  # an outage must not kill the sealer
                log.warning("audit_seal_failed", error=type(exc).__name__)

    async def _overdue(self) -> bool:
        """An entry pending for over OVERDUE_SECONDS, or a checkpoint missed by a whole interval."""
        async with self._store.read() as conn:
            _count, oldest = await sql.pending_summary(conn)
            if oldest is not None and self._clock() - oldest > timedelta(seconds=OVERDUE_SECONDS):
                return True
            if self._signer is None:
                return False
            head = await sql.read_head(conn)
            last = await conn.run_sync(sql.last_checkpoint_seq)
        return head.seq >= (last // CHECKPOINT_EVERY + 2) * CHECKPOINT_EVERY


class JoseCheckpointSigner:
    """A CheckpointSigner on a joserfc private key (ES256 by default, or EdDSA)."""

    def __init__(self, key: ECKey | OKPKey, kid: str, alg: str = "ES256") -> None:
        self._key, self._kid, self._alg = key, kid, alg

    @property
    def kid(self) -> str:
        """The signing key's id."""
        return self._kid

    def sign_compact(self, payload: bytes, *, typ: str | None = CHECKPOINT_TYP) -> str:
        """A compact JWS over `payload`, typed so it cannot pass for another token."""
        header = {"alg": self._alg, "kid": self._kid, **({"typ": typ} if typ else {})}
        return jws.serialize_compact(header, payload, self._key, algorithms=[self._alg])
