"""Group commit: units of work that arrive together share one transaction.

One writer task per lane takes whatever has queued by the time it holds a transaction and runs
it there; each caller's `write` returns once the transaction holding its work has committed, so
"returned" still means "durably recorded". A failed batch is run again by executor, then item
by item, each in its own transaction, so one bad item fails only itself: work must therefore
touch nothing but the connection it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.errors import DatabaseUnavailableError

log = structlog.get_logger("gateway.store.group_commit")
I = TypeVar("I")  # noqa: E741 - the conventional name for an item type
R = TypeVar("R")
C = TypeVar("C")  # the connection a lane commits on
Work = Callable[[AsyncConnection], Awaitable[R]]
"""A unit of work: everything one use case writes, in the transaction it is given."""
Execute = Callable[[Connection, Sequence[I]], Sequence[R]]
"""A set-wise executor: writes all its queued items with a few statements, one result each.
Synchronous, so that on SQLite it runs in place (`InlineWriter`), and elsewhere in one greenlet."""
Batch = Callable[[C, Sequence[Any]], Awaitable[Sequence[Any]]]
"""How a lane runs the items queued for one executor (and groups by: one object per kind)."""


@dataclass(frozen=True, slots=True)
class SetWise(Generic[I, R]):
    """A unit of work written set-wise: `execute` runs once for every item queued with it."""

    execute: Execute[I, R]
    item: I


@dataclass(frozen=True, slots=True)
class _Queued(Generic[C]):
    execute: Batch[C]
    item: Any
    future: asyncio.Future[Any]


async def run_each(conn: AsyncConnection, works: Sequence[Work[Any]]) -> list[Any]:
    """The executor of plain units of work: each in turn, in the shared transaction."""
    return [await work(conn) for work in works]


class GroupCommitter(Generic[C]):
    """One writer task; `write(execute, item)` returns the item's result once committed."""

    def __init__(
        self,
        connect: Callable[[], contextlib.AbstractAsyncContextManager[C]],
        *,
        max_batch: int = 256,
    ) -> None:
        self._connect, self._max_batch = connect, max_batch
        self._queue: asyncio.Queue[_Queued[C]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def write(self, execute: Batch[C], item: Any) -> Any:
        """Queue one item for the next commit and wait for that commit."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="group-commit")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Queued(execute, item, future))
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
            del batch  # not kept while waiting for the next write: it may hold large envelopes

    async def _commit(self, batch: list[_Queued[C]], *, gather: bool = False) -> None:
        try:
            async with self._connect() as conn:
                if gather:  # the write lock is ours now: what queued while we waited joins in
                    while len(batch) < self._max_batch and not self._queue.empty():
                        batch.append(self._queue.get_nowait())
                results = await _execute_all(conn, batch)
        except Exception as exc:
            await self._split(batch, exc)
            return
        for queued, result in zip(batch, results, strict=True):
            _settle(queued.future, result=result)

    async def _split(self, batch: list[_Queued[C]], exc: Exception) -> None:
        if len(batch) == 1 or isinstance(exc, DatabaseUnavailableError):
            # An outage fails the whole batch alike: running it again item by item would only
            # wait for the same timeout once per item.
            for queued in batch:
                _settle(queued.future, error=exc)
            return
        log.warning("group_commit_split", count=len(batch), error=type(exc).__name__)
        groups = _by_executor(batch)
        for part in groups.values() if len(groups) > 1 else [[q] for q in batch]:
            await self._commit(part)


def _by_executor(batch: Sequence[_Queued[C]]) -> dict[Batch[C], list[_Queued[C]]]:
    groups: dict[Batch[C], list[_Queued[C]]] = {}
    for queued in batch:
        groups.setdefault(queued.execute, []).append(queued)
    return groups


async def _execute_all(conn: C, batch: Sequence[_Queued[C]]) -> list[Any]:
    """Each executor once over its items; results back in the batch's order."""
    groups = _by_executor(batch)
    answers = [await execute(conn, [q.item for q in group]) for execute, group in groups.items()]
    return _in_batch_order(batch, groups.values(), answers)


def _in_batch_order(
    batch: Sequence[_Queued[C]],
    groups: Iterable[list[_Queued[C]]],
    answers: Sequence[Sequence[Any]],
) -> list[Any]:
    results: dict[int, Any] = {}
    for group, group_answers in zip(groups, answers, strict=True):
        for queued, answer in zip(group, group_answers, strict=True):
            results[id(queued)] = answer
    return [results[id(q)] for q in batch]


def _settle(
    future: asyncio.Future[Any], *, result: Any = None, error: Exception | None = None
) -> None:
    if future.done():  # the caller went away (client disconnected): nothing to tell
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)
