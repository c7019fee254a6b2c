"""Group commit: writes that arrive together share one transaction.

Under load the commit is the bottleneck: SQLite has one writer at a time, and every statement
through aiosqlite costs thread hops; PostgreSQL pays a round trip per commit. A single writer
task takes whatever work has queued since its last commit (at most `max_batch` items) and runs it
in one transaction; each caller's `submit` returns once the transaction holding its work has
committed, so "returned" still means "durably recorded". If a batch fails, its items are run
again one by one, each in its own transaction, so one bad item fails only itself: work must
therefore touch nothing but the connection it is given (no partner calls, no metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

if TYPE_CHECKING:  # the Store owns a batcher: import its type only for annotations
    from gateway.store.database import Store

log = structlog.get_logger("gateway.store.batching")
I = TypeVar("I")  # noqa: E741 - the conventional name for an item type
R = TypeVar("R")
Execute = Callable[[AsyncConnection, Sequence[I]], Awaitable[Sequence[R]]]


class TransactionBatcher(Generic[I, R]):
    """One writer task; `submit(item)` returns the item's result once it is committed.

    `read_only` batchers run on a read connection instead (no write lock, nothing committed):
    lookups asked for at the same moment share one query.
    """

    def __init__(
        self, store: Store, execute: Execute[I, R], *, max_batch: int = 64, read_only: bool = False
    ) -> None:
        self._store, self._execute, self._max_batch = store, execute, max_batch
        self._read_only = read_only
        self._queue: asyncio.Queue[tuple[I, asyncio.Future[R]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: I) -> R:
        """Queue one item for the next commit and wait for that commit."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="group-commit")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        return await future

    async def close(self) -> None:
        """Finish what is queued, then stop the writer."""
        if self._task is None:
            return
        if not self._task.done():
            await self._queue.join()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._commit(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _commit(self, batch: list[tuple[I, asyncio.Future[R]]]) -> None:
        connect = self._store.read if self._read_only else self._store.transaction
        try:
            async with connect() as conn:
                results = await self._execute(conn, [item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], error=exc)
                return
            log.warning("group_commit_split", count=len(batch))
            for single in batch:
                await self._commit([single])
            return
        for (_item, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)


def _settle(
    future: asyncio.Future[Any], *, result: Any = None, error: Exception | None = None
) -> None:
    if future.done():  # the caller went away (client disconnected): nothing to tell
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


Work = Callable[[AsyncConnection], Awaitable[Any]]


async def run_each(conn: AsyncConnection, works: Sequence[Work]) -> list[Any]:
    """The general executor: each caller's work in turn, in the shared transaction."""
    return [await work(conn) for work in works]
