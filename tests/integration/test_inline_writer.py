"""SQLite set-wise writes run in place: another process's lock is waited for off the event loop,
and the WAL is checkpointed in the background."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.errors import DatabaseUnavailableError
from gateway.store import inline_writer
from gateway.store.database import Store
from gateway.store.dialects import DatabaseOptions
from gateway.store.group_commit import SetWise
from gateway.store.tables import optouts, receipts


def _insert_many(conn: Connection, indexes: Sequence[str]) -> list[str]:
    at = datetime.now(UTC)
    rows = [{"nhs_index": i, "list_version": "t", "loaded_at": at} for i in indexes]
    conn.execute(insert(optouts), rows)
    return list(indexes)


def _path(url: str) -> Path:
    return Path(str(make_url(url).database))


async def _opened(url: str, db_timeout: float = 10.0) -> Store:
    store = await Store.open(url, DatabaseOptions(timeout=db_timeout))
    await store.upgrade()
    return store


@pytest.fixture
async def store(sqlite_url: str) -> AsyncIterator[Store]:
    opened = await _opened(sqlite_url)
    yield opened
    await opened.close()


async def _count(store: Store) -> int:
    async with store.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(optouts)) or 0)


async def test_another_process_lock_is_waited_for_without_blocking_the_loop(
    store: Store, sqlite_url: str
) -> None:
    other = sqlite3.connect(_path(sqlite_url), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process is writing
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    beat = asyncio.create_task(ticker())
    write = asyncio.create_task(store.write(SetWise(_insert_many, "waited")))
    await asyncio.sleep(0.3)
    assert not write.done()
    assert ticks >= 10  # the loop kept running while the write waited for the lock
    other.execute("COMMIT")
    other.close()
    assert await asyncio.wait_for(write, 5) == "waited"
    beat.cancel()
    assert await _count(store) == 1
    # the connection is back to not waiting: a second write goes in place at once
    assert await store.write(SetWise(_insert_many, "next")) == "next"


async def test_a_lock_held_past_the_timeout_is_an_outage(sqlite_url: str) -> None:
    store = await _opened(sqlite_url, db_timeout=0.2)
    other = sqlite3.connect(_path(sqlite_url), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(DatabaseUnavailableError):
            await store.write(SetWise(_insert_many, "late"))
        other.execute("ROLLBACK")
        assert await store.write(SetWise(_insert_many, "after")) == "after"
        assert await _count(store) == 1
    finally:
        other.close()
        await store.close()


@pytest.mark.parametrize("every", [0.0, 3600.0])
async def test_the_wal_is_checkpointed_in_the_background(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, every: float
) -> None:
    monkeypatch.setattr(inline_writer, "CHECKPOINT_EVERY", every)
    store = await _opened(sqlite_url)
    try:
        # start from a checkpointed file, so only what follows can make it grow
        async with store.read() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        before = _path(sqlite_url).stat().st_size
        for n in range(20):
            batch = [f"c{n}-{i}" for i in range(100)]
            await asyncio.gather(*(store.write(SetWise(_insert_many, i)) for i in batch))
        await asyncio.sleep(0.3)  # the checkpoint runs in a thread
        grew = _path(sqlite_url).stat().st_size > before
        assert grew is (every == 0.0)  # pages reach the database file only by a checkpoint
        assert await _count(store) == 2000
    finally:
        await store.close()


def _fails_at_commit(conn: Connection, items: Sequence[str]) -> list[str]:
    # A deferred foreign key is checked at COMMIT: the COMMIT fails and SQLite's transaction
    # stays open, as it may after a full disk or an I/O error.
    conn.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
    at = datetime.now(UTC)
    row = {
        "partner_id": "p",
        "receipt_id": "r",
        "disclosure_id": "no-such-disclosure",
        "status": "received",
        "token": "t",
        "received_at": at,
        "verified_kid": "k",
    }
    conn.execute(insert(receipts), [row])
    return list(items)


def _assert_write_lock_free(sqlite_url: str) -> None:
    """Another connection takes the write lock at once (raises "database is locked" if not)."""
    other = sqlite3.connect(_path(sqlite_url), isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()


async def test_a_failed_commit_leaves_no_transaction_open(store: Store, sqlite_url: str) -> None:
    with pytest.raises(IntegrityError):
        await store.write(SetWise(_fails_at_commit, "bad"))
    _assert_write_lock_free(sqlite_url)
    assert await store.write(SetWise(_insert_many, "after")) == "after"
    assert await _count(store) == 1


async def test_a_wait_cancelled_twice_still_leaves_the_connection_clean(
    store: Store, sqlite_url: str
) -> None:
    writer = inline_writer.InlineWriter(sqlite_url, busy_ms=10_000)
    other = sqlite3.connect(_path(sqlite_url), isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")

        async def write() -> None:
            async with writer.transaction() as conn:
                _insert_many(conn, ["cancelled"])

        waiting = asyncio.create_task(write())
        await asyncio.sleep(0.2)  # in the thread, waiting for the lock
        waiting.cancel()
        await asyncio.sleep(0.01)
        waiting.cancel()
        await asyncio.sleep(0.01)
        other.execute("COMMIT")
        with pytest.raises(asyncio.CancelledError):
            await waiting
        async with writer.transaction() as conn:  # the connection is usable, in no transaction
            _insert_many(conn, ["next"])
        other.execute("BEGIN IMMEDIATE")  # and holds no lock
        other.execute("ROLLBACK")
    finally:
        other.close()
        await writer.close()
    assert await _count(store) == 1


async def test_a_failed_commit_of_a_unit_of_work_leaves_no_lock_held(
    store: Store, sqlite_url: str
) -> None:
    async def fails_at_commit(conn: AsyncConnection) -> None:
        await conn.run_sync(_fails_at_commit, ["bad"])

    with pytest.raises(IntegrityError):
        await store.write(fails_at_commit)
    _assert_write_lock_free(sqlite_url)

    async def insert_one(conn: AsyncConnection) -> None:
        await conn.run_sync(_insert_many, ["after"])

    await store.write(insert_one)
    assert await _count(store) == 1
