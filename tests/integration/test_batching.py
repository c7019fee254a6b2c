"""Group commit: concurrent work shares a transaction; one failing item fails only itself."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.database import Store
from gateway.store.tables import optouts
from tests.integration.store_support import open_store


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(database_url)
    await opened.upgrade()
    yield opened
    await opened.close()


def _insert(index: str) -> object:
    async def work(conn: AsyncConnection) -> str:
        await conn.execute(
            insert(optouts).values(nhs_index=index, list_version="t", loaded_at=func.now())
        )
        return index

    return work


async def _count(store: Store) -> int:
    async with store.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(optouts)) or 0)


async def test_concurrent_work_commits_and_returns_each_result(store: Store) -> None:
    results = await asyncio.gather(*(store.batch(_insert(f"i{n}")) for n in range(40)))  # type: ignore[arg-type]
    assert results == [f"i{n}" for n in range(40)]
    assert await _count(store) == 40


async def test_one_failing_item_fails_alone(store: Store) -> None:
    await store.batch(_insert("taken"))  # type: ignore[arg-type]
    works = [_insert("a"), _insert("taken"), _insert("b")]  # the middle one collides
    results = await asyncio.gather(*(store.batch(w) for w in works), return_exceptions=True)  # type: ignore[arg-type]
    assert results[0] == "a"
    assert results[2] == "b"
    assert isinstance(results[1], Exception)
    assert await _count(store) == 3


async def _insert_many(conn: AsyncConnection, indexes: Sequence[str]) -> list[str]:
    """A set-wise executor: one INSERT for the whole batch."""
    at = datetime.now(UTC)
    rows = [{"nhs_index": i, "list_version": "t", "loaded_at": at} for i in indexes]
    await conn.execute(insert(optouts), rows)
    return [f"many:{i}" for i in indexes]


async def test_kinds_of_work_share_a_transaction_and_a_bad_item_still_fails_alone(
    store: Store,
) -> None:
    await store.batch(_insert("taken"))  # type: ignore[arg-type]
    submitted = [
        store.submit(_insert_many, "m1"),
        store.batch(_insert("w1")),  # type: ignore[arg-type]
        store.submit(_insert_many, "taken"),  # collides: fails its executor's batch, then alone
        store.submit(_insert_many, "m2"),
        store.batch(_insert("w2")),  # type: ignore[arg-type]
    ]
    results = await asyncio.gather(*submitted, return_exceptions=True)
    assert [r for i, r in enumerate(results) if i != 2] == ["many:m1", "w1", "many:m2", "w2"]
    assert isinstance(results[2], Exception)
    assert await _count(store) == 5


def _insert_many_sync(conn: Connection, indexes: Sequence[str]) -> list[str]:
    """A set-wise executor on a sync connection (`Store.submit_sync`)."""
    at = datetime.now(UTC)
    rows = [{"nhs_index": i, "list_version": "t", "loaded_at": at} for i in indexes]
    conn.execute(insert(optouts), rows)
    THREADS.add(threading.current_thread().name)
    return list(indexes)


THREADS: set[str] = set()


async def test_sync_executors_batch_and_a_bad_item_fails_alone(
    store: Store, database_url: str
) -> None:
    THREADS.clear()
    await store.submit_sync(_insert_many_sync, "taken")
    items = [f"s{n}" for n in range(30)] + ["taken"]
    results = await asyncio.gather(
        *(store.submit_sync(_insert_many_sync, i) for i in items), return_exceptions=True
    )
    assert results[:30] == items[:30]
    assert isinstance(results[30], IntegrityError)
    assert await _count(store) == 31
    # A SQLite file is written on the writer's own thread; PostgreSQL through run_sync.
    on_writer = {name.startswith("sqlite-writer") for name in THREADS}
    assert on_writer == {database_url.startswith("sqlite")}


async def test_the_sqlite_writer_waits_for_the_async_writers_lock(sqlite_url: str) -> None:
    """Both kinds of writer share the store's write lock: neither waits in SQLite's busy handler."""
    async with open_store(sqlite_url) as store:
        async with store.transaction():
            pending = asyncio.ensure_future(store.submit_sync(_insert_many_sync, "after"))
            await asyncio.sleep(0.2)
            assert not pending.done()  # queued behind the open write transaction
        assert await pending == "after"
        assert await _count(store) == 1


def _slow_insert(conn: Connection, indexes: Sequence[str]) -> list[str]:
    """Each transaction takes a while: work always queues up behind it."""
    time.sleep(0.005)
    return _insert_many_sync(conn, indexes)


async def test_under_continuous_sync_writes_an_async_writer_still_gets_its_turn(
    sqlite_url: str,
) -> None:
    """The writer thread drains back to back, but lets the write lock go between sessions."""
    async with open_store(sqlite_url) as store:
        stop = asyncio.Event()
        submitted: list[asyncio.Future[str]] = []

        async def keep_queueing() -> None:  # the queue is never empty for long
            while not stop.is_set():
                for _ in range(5):
                    item = f"w{len(submitted)}"
                    submitted.append(asyncio.ensure_future(store.submit_sync(_slow_insert, item)))
                await asyncio.sleep(0.001)

        producer = asyncio.ensure_future(keep_queueing())
        await asyncio.sleep(0.1)  # the thread is in a session now, with work always queued
        before = sum(f.done() for f in submitted)
        async with asyncio.timeout(10):  # a session that never ended would hang here
            await store.batch(_insert("async-writer"))  # type: ignore[arg-type]
        stop.set()
        await producer
        await asyncio.gather(*submitted)
        assert before > 0  # the sync writers were indeed committing before the async one
        assert await _count(store) == len(submitted) + 1


async def test_closing_the_store_commits_what_is_queued(sqlite_url: str) -> None:
    async with open_store(sqlite_url) as store:
        pending = [
            asyncio.ensure_future(store.submit_sync(_insert_many_sync, f"q{n}")) for n in range(50)
        ]
        await asyncio.sleep(0)  # queued, not yet answered
        assert not any(p.done() for p in pending)
        await store.close()
        assert [await p for p in pending] == [f"q{n}" for n in range(50)]
    async with open_store(sqlite_url) as reopened:
        assert await _count(reopened) == 50
