"""SQLite write transactions on a thread of their own, which drains the queue of batched writes.

Through aiosqlite every statement is three hand-offs between the event loop and the driver's
thread (cursor, execute, close): 23 for one group commit of accepted disclosures, each waking a
sleeping thread, which on a virtual machine costs more CPU than the statement. Here a whole
transaction, BEGIN IMMEDIATE to COMMIT, runs on the writer's thread with a sync connection, and
SQLite's own work runs there without the GIL, beside the event loop.

Batched writes (`submit`) go further: the thread takes what has queued, commits it, answers those
callers with one callback into the loop, and goes straight on to what queued meanwhile, for as
long as there is any (a session). The loop is not a step between one commit and the next, so
under load a commit no longer waits for a busy loop to start it, and the loop no longer spends a
turn per commit on starting it.

The store's asyncio write lock is held for each session and each `run`, so this thread never
queues behind the async engine's writers in SQLite's busy handler, which sleeps. A session lets
the lock go after `SESSION_SECONDS`, so the other writers of the process wait at most that long.
"""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import structlog
from sqlalchemy.engine import Connection

from gateway.store.batching import Queued, SyncExecute, execute_all_sync, settle, split
from gateway.store.engine import create_sqlite_writer_engine

log = structlog.get_logger("gateway.store.sqlite_writer")
I = TypeVar("I")  # noqa: E741 - the conventional name for an item type
R = TypeVar("R")
SESSION_SECONDS = 0.02  # the longest the thread keeps the write lock while work keeps coming
MAX_BATCH = 256  # items per transaction


class SqliteWriter:
    """Whole write transactions on one thread, under the store's write lock."""

    def __init__(self, url: str, lock: asyncio.Lock) -> None:
        self._engine = create_sqlite_writer_engine(url)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")
        self._lock = lock
        self._queue: queue.SimpleQueue[Queued] = queue.SimpleQueue()
        self._session: asyncio.Task[None] | None = None

    async def run(
        self, fn: Callable[[Connection], R], *, locked: Callable[[], object] | None = None
    ) -> R:
        """`fn(conn)` in one transaction: committed when this returns, rolled back if it raises.

        `locked` is called once the write lock is held, before `fn` starts.
        """
        async with self._lock:
            if locked is not None:
                locked()
            return await asyncio.get_running_loop().run_in_executor(self._thread, self._run, fn)

    def _run(self, fn: Callable[[Connection], R]) -> R:
        with self._engine.begin() as conn:
            return fn(conn)

    async def submit(self, execute: SyncExecute[I, R], item: I) -> R:
        """Queue `item` for `execute(conn, items)`; its result once its transaction committed.

        Items queued together share a transaction; if it fails, it is run again by executor,
        then item by item, so a bad item fails only itself (the rules of `batching`).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.put(Queued(execute, item, future))
        if self._session is None or self._session.done():
            self._session = asyncio.create_task(self._serve(loop), name="sqlite-writer-session")
        return await future

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        # Checked on the loop: an item queued after the thread found the queue empty is either
        # seen here, or queued after this task finished, and then its submit starts a session.
        while not self._queue.empty():
            async with self._lock:
                await loop.run_in_executor(self._thread, self._drain, loop)

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the thread: commit batches back to back until the queue is empty or time is up."""
        deadline = time.monotonic() + SESSION_SECONDS
        while True:
            batch = self._take()
            if not batch:
                return
            self._commit(batch, loop)
            if time.monotonic() >= deadline:
                return

    def _take(self) -> list[Queued]:
        batch: list[Queued] = []
        while len(batch) < MAX_BATCH:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _commit(self, batch: list[Queued], loop: asyncio.AbstractEventLoop) -> None:
        try:
            with self._engine.begin() as conn:
                results = execute_all_sync(conn, batch)
        except Exception as exc:
            if len(batch) == 1:
                loop.call_soon_threadsafe(_answer, batch, None, exc)
                return
            log.warning("group_commit_split", count=len(batch))
            for part in split(batch):
                self._commit(part, loop)
            return
        loop.call_soon_threadsafe(_answer, batch, results, None)

    async def close(self) -> None:
        """Finish what is queued, then close the connection and the thread."""
        loop = asyncio.get_running_loop()
        while True:
            if self._session is not None:
                await asyncio.wait([self._session])  # its outcome is its callers' to see
            if self._queue.empty():
                break
            self._session = asyncio.create_task(self._serve(loop))  # left by a cancelled one
        await asyncio.to_thread(self._thread.shutdown, wait=True)
        self._engine.dispose()


def _answer(
    batch: Sequence[Queued], results: Sequence[Any] | None, error: Exception | None
) -> None:
    """On the loop: tell each caller of a committed (or failed) batch."""
    for i, queued in enumerate(batch):
        if error is None:
            assert results is not None
            settle(queued.future, result=results[i])
        else:
            settle(queued.future, error=error)
