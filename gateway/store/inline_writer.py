"""SQLite set-wise writes run in place, on the event loop, in one transaction per batch.

Through aiosqlite each statement is a hand-off to the driver's thread and back through the
event loop, so a busy loop makes a commit of a few statements wait its turn several times
(ADR 0001). A set-wise batch is a few statements on small rows, and in WAL mode with
synchronous=NORMAL a commit does not fsync, so it is cheaper to run it where it is. The two
things that could block for long are kept off the loop: waiting for another process's write
lock (SQLite's busy handler then waits in a thread) and checkpoints (run in a thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator

import structlog
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from gateway.store.dialects import create_sqlite_sync_engine

log = structlog.get_logger("gateway.store.inline_writer")
CHECKPOINT_EVERY = 1.0  # seconds between checkpoints while writes keep coming


def _busy(exc: OperationalError) -> bool:
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_BUSY  # BUSY_RECOVERY too


def _end_transaction(conn: Connection) -> None:
    """Roll back what SQLAlchemy left open: after a failed COMMIT it rolls nothing back, but
    SQLite's transaction may still be open, holding the write lock."""
    if conn.invalidated:
        return
    dbapi = conn.connection.dbapi_connection
    if dbapi is None or not dbapi.in_transaction:
        return
    try:
        dbapi.rollback()
    except sqlite3.Error:
        conn.invalidate()  # closing the connection releases the lock then


class InlineWriter:
    """One sync connection whose write transactions run on the event loop."""

    def __init__(self, url: str, *, busy_ms: int) -> None:
        self._engine = create_sqlite_sync_engine(url)
        self._busy_ms = busy_ms
        self._connection: Connection | None = None
        self._checkpointing: asyncio.Future[None] | None = None
        self._checkpointed_at = time.monotonic()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """BEGIN IMMEDIATE ... COMMIT; the caller's work must not await inside it."""
        conn = self._connection
        if conn is None or conn.closed or conn.invalidated:
            # Opening switches the file to WAL, which may wait on another process: not here.
            conn = self._connection = await asyncio.to_thread(self._engine.connect)
        try:
            with conn.begin():
                await self._lock(conn)
                yield conn
        except BaseException:
            _end_transaction(conn)
            raise
        self._checkpoint_soon()

    async def close(self) -> None:
        """Wait for a running checkpoint, then close the connections."""
        if self._checkpointing is not None:
            await asyncio.wait([self._checkpointing])
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self._engine.dispose()

    async def _lock(self, conn: Connection) -> None:
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            return
        except OperationalError as exc:
            if not _busy(exc):
                raise
        # Another process is writing: SQLite's busy handler waits for it, in a thread.
        waiting = asyncio.get_running_loop().run_in_executor(None, self._lock_waiting, conn)
        try:
            await asyncio.shield(waiting)
        except asyncio.CancelledError:
            # The thread has the connection until it returns, however often we are cancelled:
            # a rollback meanwhile would race its BEGIN and leave the lock held.
            while not waiting.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait([waiting])
            raise

    def _lock_waiting(self, conn: Connection) -> None:
        conn.exec_driver_sql(f"PRAGMA busy_timeout={self._busy_ms}")
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        finally:
            conn.exec_driver_sql("PRAGMA busy_timeout=0")

    def _checkpoint_soon(self) -> None:
        running = self._checkpointing is not None and not self._checkpointing.done()
        if running or time.monotonic() - self._checkpointed_at < CHECKPOINT_EVERY:
            return
        self._checkpointed_at = time.monotonic()
        try:
            self._checkpointing = asyncio.get_running_loop().run_in_executor(None, self._checkpoint)
        except RuntimeError:  # shutting down: the batch has committed, which is what counts
            log.info("sqlite_checkpoint_skipped")

    def _checkpoint(self) -> None:
        """Copy committed pages from the WAL into the database (PASSIVE: never waits)."""
        try:
            with self._engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception as exc:  # the next one will catch up; the WAL only grows meanwhile
            log.warning("sqlite_checkpoint_failed", error=type(exc).__name__)
