"""SQLite write transactions in one hand-off: a sync connection on a thread of its own.

Through aiosqlite every statement is three hand-offs between the event loop and the driver's
thread (cursor, execute, close): 23 for one group commit of accepted disclosures, each waking a
sleeping thread, which on a virtual machine costs more CPU than the statement. Here the whole
transaction, BEGIN IMMEDIATE to COMMIT, is one call on the writer's thread: one hand-off there
and one back. SQLite's own work runs there without the GIL, beside the event loop.

The caller holds the store's write lock meanwhile (`Store.write_sync`), so the writer never
queues behind the async engine's writers in SQLite's busy handler, which sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy.engine import Connection

from gateway.store.engine import create_sqlite_writer_engine

R = TypeVar("R")


class SqliteWriter:
    """Runs `fn(conn)` in one committed write transaction on the writer's thread."""

    def __init__(self, url: str) -> None:
        self._engine = create_sqlite_writer_engine(url)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")

    async def run(self, fn: Callable[[Connection], R]) -> R:
        """Committed when this returns; rolled back, and the error raised here, if `fn` raises."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._run, fn)

    def _run(self, fn: Callable[[Connection], R]) -> R:
        with self._engine.begin() as conn:
            return fn(conn)

    async def close(self) -> None:
        """Finish the transaction in hand, then close the connection and the thread."""
        await asyncio.to_thread(self._thread.shutdown, wait=True)
        self._engine.dispose()
