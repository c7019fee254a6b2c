"""Group commit: allowed disclosures that arrive together are recorded in one transaction.

Under load, the database commit is the pipeline's bottleneck (one write lock on SQLite, one
round trip per commit on PostgreSQL). A single writer task takes whatever disclosures have
queued up since its last commit (at most `max_batch`) and records them together; each caller's
reply waits for the commit that holds its disclosure, so a 202 still means "durably recorded".
If a batch fails, its items are retried one by one so that one bad item fails only itself.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from gateway.store import disclosures
from gateway.store.database import Store

log = structlog.get_logger("gateway.group_commit")
Item = tuple[disclosures.Accepted, "asyncio.Future[None]"]


class GroupCommit:
    """One writer task for accepted disclosures; `record` returns once the item is committed."""

    def __init__(self, store: Store, *, max_batch: int = 64) -> None:
        self._store, self._max_batch = store, max_batch
        self._queue: asyncio.Queue[Item] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def record(self, item: disclosures.Accepted) -> None:
        """Queue one disclosure for the next commit and wait for that commit."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="group-commit")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        await future

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

    async def _commit(self, batch: list[Item]) -> None:
        try:
            async with self._store.transaction() as conn:
                await disclosures.record_accepted_many(conn, [item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            log.warning("group_commit_split", count=len(batch))
            for single in batch:
                await self._commit([single])
            return
        for _item, future in batch:
            _settle(future, None)


def _settle(future: asyncio.Future[None], error: Exception | None) -> None:
    if future.done():  # the caller went away (client disconnected): nothing to tell
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
