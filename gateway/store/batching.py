"""Group commit: writes that arrive together share one transaction.

Under load the commit is the bottleneck: SQLite has one writer at a time, and every statement
through aiosqlite costs thread hops; PostgreSQL pays a round trip per commit. A single writer
task takes whatever work has queued by the time it holds a transaction (at most `max_batch`
items, of any kind: each kind's executor writes its items set-wise) and runs it in that
transaction; each caller's `submit` returns once the transaction holding its work has committed,
so "returned" still means "durably recorded". If a batch fails, it is run again by executor, then
item by item, each in its own transaction, so one bad item fails only itself: work must therefore
touch nothing but the connection it is given (no partner calls, no metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

if TYPE_CHECKING:  # the Store owns a batcher: import its type only for annotations
    from gateway.store.database import Store

log = structlog.get_logger("gateway.store.batching")
I = TypeVar("I")  # noqa: E741 - the conventional name for an item type
R = TypeVar("R")
Execute = Callable[[AsyncConnection, Sequence[I]], Awaitable[Sequence[R]]]
SyncExecute = Callable[[Connection, Sequence[I]], Sequence[R]]


@dataclass(frozen=True, slots=True)
class Queued:
    execute: Callable[..., Any]  # an Execute, or a SyncExecute in a sync batcher
    item: Any
    future: asyncio.Future[Any]


class TransactionBatcher:
    """One writer task; `submit(execute, item)` returns the item's result once it is committed.

    Items for different executors may share a transaction: a round runs each executor once,
    over its own items, in the order the executors first appear. `read_only` batchers run on a
    read connection instead (no write lock, nothing committed): lookups asked for at the same
    moment share one query.
    """

    def __init__(
        self, store: Store, *, max_batch: int = 256, read_only: bool = False, sync: bool = False
    ) -> None:
        self._store, self._max_batch, self._read_only = store, max_batch, read_only
        self._sync = sync  # executors take a sync Connection: the batch runs via write_sync
        self._queue: asyncio.Queue[Queued] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def submit(self, execute: Execute[I, R] | SyncExecute[I, R], item: I) -> R:
        """Queue one item for the next commit and wait for that commit."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="group-commit")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(Queued(execute, item, future))
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
            try:
                await self._commit(batch, gather=True)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _gather(self, batch: list[Queued]) -> None:
        """The writer is ours now: what queued while we waited joins in."""
        while len(batch) < self._max_batch and not self._queue.empty():
            batch.append(self._queue.get_nowait())

    async def _commit(self, batch: list[Queued], *, gather: bool = False) -> None:
        connect = self._store.read if self._read_only else self._store.transaction
        try:
            if self._sync:
                results = await self._store.write_sync(
                    lambda conn: execute_all_sync(conn, batch),
                    locked=(lambda: self._gather(batch)) if gather else None,
                )
            else:
                async with connect() as conn:
                    if gather:
                        self._gather(batch)
                    results = await _execute_all(conn, batch)
        except Exception as exc:
            await self._split(batch, exc)
            return
        for queued, result in zip(batch, results, strict=True):
            settle(queued.future, result=result)

    async def _split(self, batch: list[Queued], exc: Exception) -> None:
        """A failed batch is retried by executor, then item by item: a bad item fails alone."""
        if len(batch) == 1:
            settle(batch[0].future, error=exc)
            return
        log.warning("group_commit_split", count=len(batch))
        for part in split(batch):
            await self._commit(part)


def split(batch: Sequence[Queued]) -> list[list[Queued]]:
    """How a failed batch is retried: by executor, or item by item if it had only one."""
    groups = by_executor(batch)
    return list(groups.values()) if len(groups) > 1 else [[q] for q in batch]


def by_executor(batch: Sequence[Queued]) -> dict[Callable[..., Any], list[Queued]]:
    groups: dict[Callable[..., Any], list[Queued]] = {}
    for queued in batch:
        groups.setdefault(queued.execute, []).append(queued)
    return groups


async def _execute_all(conn: AsyncConnection, batch: Sequence[Queued]) -> list[Any]:
    """Each executor once over its items; results back in the batch's order."""
    groups = by_executor(batch)
    answers = [await execute(conn, [q.item for q in group]) for execute, group in groups.items()]
    return _in_batch_order(batch, groups.values(), answers)


def execute_all_sync(conn: Connection, batch: Sequence[Queued]) -> list[Any]:
    """`_execute_all` for sync executors (on the SQLite writer's thread, or under run_sync)."""
    groups = by_executor(batch)
    answers = [execute(conn, [q.item for q in group]) for execute, group in groups.items()]
    return _in_batch_order(batch, groups.values(), answers)


def _in_batch_order(
    batch: Sequence[Queued], groups: Iterable[list[Queued]], answers: Sequence[Sequence[Any]]
) -> list[Any]:
    results: dict[int, Any] = {}
    for group, group_answers in zip(groups, answers, strict=True):
        for queued, answer in zip(group, group_answers, strict=True):
            results[id(queued)] = answer
    return [results[id(q)] for q in batch]


def settle(
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
