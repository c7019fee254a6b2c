"""The Store: one engine, write transactions, read connections, migrations and a health check."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.store import migrate
from gateway.store.batching import Execute, SyncExecute, TransactionBatcher, Work, run_each
from gateway.store.engine import WRITE_OPTION, create_engine, is_sqlite
from gateway.store.sqlite_writer import SqliteWriter

I = TypeVar("I")  # noqa: E741 - the conventional name for an item type
R = TypeVar("R")


class NotInTransactionError(RuntimeError):
    """A repository write was called outside `Store.transaction()` (a programming error)."""


def require_transaction(conn: AsyncConnection | Connection) -> None:
    """Refuse a multi-row write that would not be atomic."""
    if not conn.in_transaction():
        raise NotInTransactionError("call this inside `async with store.transaction() as conn`")


@asynccontextmanager
async def _released_if_cancelled(conn: AsyncConnection) -> AsyncIterator[None]:
    """On SQLite, let go of the write lock a cancelled transaction would otherwise keep.

    When the task awaiting a statement is cancelled, SQLAlchemy invalidates the aiosqlite
    connection and closes it, but the cancelled statement's cursor is still referenced, so
    SQLite only marks the connection a zombie (`sqlite3_close_v2`): it stays open, inside its
    transaction, holding the database's write lock until the garbage collector finalises that
    cursor, which sits in reference cycles: seconds or longer on a quiet process. Meanwhile
    every other writer, in this process or another, waits out busy_timeout and fails with
    "database is locked".
    Shutting down with work in flight did it (the demo, on a loaded machine). The cursor is
    reachable from the cancelled task's traceback until that task is done with it, so a
    collection is scheduled for shortly after; cancellations are rare, its cost does not matter.
    """
    try:
        yield
    except asyncio.CancelledError:
        if conn.dialect.name == "sqlite":
            asyncio.get_running_loop().call_later(CANCELLED_COLLECT_AFTER, gc.collect)
        raise


CANCELLED_COLLECT_AFTER = 0.05  # seconds: the cancelled task has finished unwinding by then


class Store:
    """The durable store on SQLite or PostgreSQL; repositories take its connections."""

    def __init__(self, engine: AsyncEngine, url: str) -> None:
        self.engine = engine
        self.url = url
        # SQLite has one writer at a time; queueing our own writers here is far faster than
        # letting them collide in SQLite's busy handler, which sleeps. Other processes (the CLI)
        # still wait on busy_timeout.
        self._write_lock = asyncio.Lock() if is_sqlite(url) else contextlib.nullcontext()
        # Group commit lanes. SQLite: one, since it has one writer anyway and a bigger shared
        # transaction costs fewer thread hops than several small ones. PostgreSQL: one per kind
        # of work, committing side by side on their own connections.
        self._single_lane = is_sqlite(url)
        self._writers: dict[Execute[Any, Any] | None, TransactionBatcher] = {}
        self._sync_writers: dict[SyncExecute[Any, Any], TransactionBatcher] = {}
        self._reader = TransactionBatcher(self, read_only=True)
        # SQLite: whole write transactions in one hand-off to a thread (see sqlite_writer).
        database = make_url(url).database if is_sqlite(url) else None
        in_file = database not in (None, "", ":memory:")
        self._sqlite_writer = (
            SqliteWriter(url, self._write_lock)
            if in_file and isinstance(self._write_lock, asyncio.Lock)
            else None
        )

    @classmethod
    async def open(cls, url: str, *, pool_size: int = 20) -> Store:
        """Create the engine (and the SQLite file's folder); connects lazily."""
        if is_sqlite(url):
            database = make_url(url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
        return cls(create_engine(url, pool_size=pool_size), url)

    @property
    def is_sqlite_file(self) -> bool:
        """SQLite in a file (not in memory): other processes can open the same database."""
        return self._sqlite_writer is not None

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.engine.dialect.name

    async def close(self) -> None:
        """Finish batched work, then close every pooled connection."""
        for batcher in [*self._writers.values(), *self._sync_writers.values(), self._reader]:
            await batcher.close()
        self._writers.clear()
        self._sync_writers.clear()
        if self._sqlite_writer is not None:
            await self._sqlite_writer.close()
        await self.engine.dispose()

    async def upgrade(self) -> None:
        """Apply Alembic migrations up to head; harmless when already current."""
        await migrate.upgrade(self.engine)

    async def ping(self) -> bool:
        """True when the database answers (for /readyz); never raises for an outage."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError):
            return False
        return True

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction: committed on success, rolled back on any exception."""
        async with self._write_lock, self.engine.connect() as conn:
            await conn.execution_options(**{WRITE_OPTION: True})
            async with _released_if_cancelled(conn), conn.begin():
                yield conn

    async def write(self, work: Callable[[AsyncConnection], Awaitable[R]]) -> R:
        """The write route: `work(conn)` as one unit of work, group-committed with others.

        Returns once its transaction has committed. `work` may run twice (again alone if its
        batch failed), so it must touch nothing but the connection.
        """
        return await self.submit(run_each, work)  # type: ignore[no-any-return]

    async def batch(self, work: Work) -> Any:
        """Run `work(conn)` in a transaction shared with other work queued at the same time.

        Returns once that transaction has committed. `work` may run twice (again alone if its
        batch failed), so it must touch nothing but the connection. See `batching`.
        """
        return await self.submit(run_each, work)

    async def submit(self, execute: Execute[I, R], item: I) -> R:
        """Queue `item` for `execute(conn, items)`, which writes a whole batch set-wise.

        The set-based form of `batch`: items queued at the same time are written together in
        one transaction, each executor once over all of its items (a few statements, not a few
        per item). Returns this item's result once its transaction has committed.
        """
        lane = None if self._single_lane else execute
        writer = self._writers.get(lane)
        if writer is None:
            writer = self._writers[lane] = TransactionBatcher(self)
        return await writer.submit(execute, item)

    async def submit_sync(self, execute: SyncExecute[I, R], item: I) -> R:
        """`submit` for an executor written against a sync connection.

        On a SQLite file the writer's thread runs the transactions, one after another while
        work keeps coming (`SqliteWriter.submit`); a hot path's writes are worth writing this
        way. Elsewhere one lane per executor, through `write_sync`.
        """
        if self._sqlite_writer is not None:
            return await self._sqlite_writer.submit(execute, item)
        writer = self._sync_writers.get(execute)
        if writer is None:
            writer = self._sync_writers[execute] = TransactionBatcher(self, sync=True)
        return await writer.submit(execute, item)

    async def write_sync(
        self, fn: Callable[[Connection], R], *, locked: Callable[[], object] | None = None
    ) -> R:
        """`fn(conn)` in one write transaction on a sync connection, committed on return.

        SQLite: on the writer's thread, holding this store's write lock; PostgreSQL (and an
        in-memory SQLite database): in `transaction()`, through `run_sync`. `locked` is called
        once the write lock is held, before `fn` starts.
        """
        if self._sqlite_writer is not None:
            return await self._sqlite_writer.run(fn, locked=locked)
        async with self.transaction() as conn:
            if locked is not None:
                locked()
            return await conn.run_sync(fn)

    async def fetch(self, execute: Execute[I, R], item: I) -> R:
        """Like `submit` for reads: lookups asked for at the same moment share one query."""
        return await self._reader.submit(execute, item)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads, never taking the SQLite write lock.

        On PostgreSQL, autocommit: no BEGIN/COMMIT round trips for what is usually one SELECT
        (each statement sees the latest committed data; use `transaction()` where several reads
        must share one snapshot). On SQLite a deferred read transaction is the cheaper form.
        """
        async with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                async with _released_if_cancelled(conn), conn.begin():
                    yield conn
            else:
                yield await conn.execution_options(isolation_level="AUTOCOMMIT")
