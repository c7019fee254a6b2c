"""The Store: reads, the one write route (group-committed units of work), migrations, health."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any, TypeVar, overload

from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.errors import DatabaseUnavailableError
from gateway.store import migrate
from gateway.store.availability import Availability, is_unavailable
from gateway.store.dialects import (
    WRITE_OPTION,
    DatabaseOptions,
    behind_pgbouncer,
    create_engine,
    is_sqlite,
)
from gateway.store.group_commit import Batch, Execute, GroupCommitter, SetWise, Work, run_each
from gateway.store.inline_writer import InlineWriter

I = TypeVar("I")  # noqa: E741 - the conventional name for an item type
R = TypeVar("R")
CANCELLED_COLLECT_AFTER = 0.05  # seconds: the cancelled task has finished unwinding by then


class NotInTransactionError(RuntimeError):
    """A repository write was called outside a unit of work (a programming error)."""


def require_transaction(conn: AsyncConnection | Connection) -> None:
    """Refuse a multi-row write that would not be atomic."""
    if not conn.in_transaction():
        raise NotInTransactionError("call this inside a unit of work (`await store.write(work)`)")


@asynccontextmanager
async def _released_if_cancelled(conn: AsyncConnection) -> AsyncIterator[None]:
    """On SQLite, free the write lock a cancelled statement's zombie connection would keep.

    The cancelled cursor keeps the connection open inside its transaction until the garbage
    collector finalises it (it sits in reference cycles), so collect shortly after.
    """
    try:
        yield
    except asyncio.CancelledError:
        if conn.dialect.name == "sqlite":
            asyncio.get_running_loop().call_later(CANCELLED_COLLECT_AFTER, gc.collect)
        raise


async def _no_transaction_left(conn: AsyncConnection) -> None:
    """After a failed COMMIT SQLAlchemy rolls nothing back, but SQLite's transaction may still
    be open, holding the write lock: drop that connection, which releases it."""
    if conn.dialect.name != "sqlite" or conn.invalidated:
        return
    raw = await conn.get_raw_connection()
    if raw.driver_connection is not None and raw.driver_connection.in_transaction:
        await conn.invalidate()


PRIVATE_FILE = 0o600


def private_database_file(path: Path) -> None:
    """Create the SQLite file 0600 (and its folder 0700), or make an existing one 0600.

    SQLite gives the -wal and -shm files the database file's own mode.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)


class Store:
    """The durable store on PostgreSQL (production) or SQLite (one box)."""

    def __init__(self, engine: AsyncEngine, url: str, *, busy_ms: int = 10_000) -> None:
        self.engine = engine
        self.url = url
        self.availability = Availability(engine.dialect.name)
        # SQLite has one writer at a time: our own writers queue here rather than in SQLite's
        # busy handler, which sleeps. Set-wise work runs in place (`InlineWriter`), units of
        # work through aiosqlite. PostgreSQL: a lane per kind of work.
        self._write_lock = asyncio.Lock() if is_sqlite(url) else contextlib.nullcontext()
        self._inline = InlineWriter(url, busy_ms=busy_ms) if is_sqlite(url) else None
        self._lanes: dict[object, GroupCommitter[Any]] = {}
        self._read_lanes: dict[Execute[Any, Any], GroupCommitter[AsyncConnection]] = {}
        # Behind PgBouncer a statement prepared outside a transaction may run on another server
        # connection: reads then take a transaction, as on SQLite.
        self._transactional_reads = is_sqlite(url) or behind_pgbouncer(url)

    @classmethod
    async def open(cls, url: str, options: DatabaseOptions | None = None) -> Store:
        """Create the engine (and the SQLite file's folder); connects lazily."""
        if is_sqlite(url):
            database = make_url(url).database
            if database and database != ":memory:":
                private_database_file(Path(database))
        options = options or DatabaseOptions()
        return cls(create_engine(url, options), url, busy_ms=round(options.timeout * 1000))

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.engine.dialect.name

    async def close(self) -> None:
        """Finish queued writes, then close every pooled connection."""
        for lane in [*self._lanes.values(), *self._read_lanes.values()]:
            await lane.close()
        self._lanes.clear()
        self._read_lanes.clear()
        if self._inline is not None:
            await self._inline.close()
        await self.engine.dispose()

    async def upgrade(self) -> None:
        """Apply Alembic migrations up to head; harmless when already current."""
        await migrate.upgrade(self.engine)

    async def ping(self) -> bool:
        """True when the database answers (for /readyz); never raises for an outage."""
        try:
            async with self._reachable(), self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (DatabaseUnavailableError, SQLAlchemyError, OSError):
            return False
        return True

    @asynccontextmanager
    async def _reachable(self) -> AsyncIterator[None]:
        """Turn an outage (refused, lost, timed out, locked) into DatabaseUnavailableError.

        The original exception is not chained: its text may carry SQL parameters.
        """
        try:
            yield
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            self.availability.failed(exc)
            raise DatabaseUnavailableError(
                f"the database is unavailable ({type(exc).__name__})"
            ) from None
        self.availability.answered()

    @overload
    async def write(self, work: SetWise[I, R]) -> R: ...

    @overload
    async def write(self, work: Work[R]) -> R: ...

    async def write(self, work: SetWise[Any, Any] | Work[Any]) -> Any:
        """The one write route: a unit of work, committed together with others queued with it.

        Returns its result once its transaction has committed. The work may run twice (alone,
        if its batch failed), so it must touch nothing but the connection.
        """
        if not isinstance(work, SetWise):
            return await self._lane(None, self._transaction).write(run_each, work)
        if self._inline is not None:
            lane = self._lane(InlineWriter, self._inline_transaction)
            return await lane.write(_in_place(work.execute), work.item)
        lane = self._lane(work.execute, self._transaction)
        return await lane.write(_under_run_sync(work.execute), work.item)

    def _lane(self, key: object, connect: Callable[[], Any]) -> GroupCommitter[Any]:
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = GroupCommitter(connect)
        return lane

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncConnection]:
        """The write transaction a lane's writer commits a batch in; everyone else calls `write`."""
        async with self._reachable(), self._write_lock, self.engine.connect() as conn:
            await conn.execution_options(**{WRITE_OPTION: True})
            try:
                async with _released_if_cancelled(conn), conn.begin():
                    yield conn
            except Exception:
                await _no_transaction_left(conn)
                raise

    @asynccontextmanager
    async def _inline_transaction(self) -> AsyncIterator[Connection]:
        """SQLite's set-wise lane: a transaction run in place on the event loop."""
        assert self._inline is not None
        async with self._reachable(), self._write_lock, self._inline.transaction() as conn:
            yield conn

    async def read_together(self, work: SetWise[I, R]) -> R:
        """A set-wise read, made with the same kind of read asked for meanwhile: one statement
        and one connection for many callers (the disclosures of envelopes arriving together)."""
        lane = self._read_lanes.get(work.execute)
        if lane is None:
            lane = self._read_lanes[work.execute] = GroupCommitter(self.read)
        result: R = await lane.write(_under_run_sync(work.execute), work.item)
        return result

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads, never taking the SQLite write lock.

        PostgreSQL: autocommit, each statement sees the latest committed data. SQLite, and
        PostgreSQL behind PgBouncer: a read transaction.
        """
        async with self._reachable(), self.engine.connect() as conn:
            if self._transactional_reads:
                async with _released_if_cancelled(conn), conn.begin():
                    yield conn
            else:
                yield await conn.execution_options(isolation_level="AUTOCOMMIT")


@cache
def _in_place(execute: Execute[Any, Any]) -> Batch[Connection]:
    """A set-wise executor on a sync connection (one object per executor: lanes group by it)."""

    async def batch(conn: Connection, items: Sequence[Any]) -> Sequence[Any]:
        return execute(conn, items)

    return batch


@cache
def _under_run_sync(execute: Execute[Any, Any]) -> Batch[AsyncConnection]:
    """A set-wise executor on an async connection, run in one greenlet."""

    async def batch(conn: AsyncConnection, items: Sequence[Any]) -> Sequence[Any]:
        return await conn.run_sync(execute, items)

    return batch
