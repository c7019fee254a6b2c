"""Group commit: concurrent units of work share a transaction; one failing item fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.database import Store
from gateway.store.group_commit import SetWise
from gateway.store.tables import optouts
from tests.integration.store_support import open_store


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    opened = await Store.open(database_url)
    await opened.upgrade()
    yield opened
    await opened.close()


COMMITS: list[int] = []  # transactions seen by the set-wise executor, by batch size


def _insert(index: str) -> Callable[[AsyncConnection], Awaitable[str]]:
    async def work(conn: AsyncConnection) -> str:
        await conn.execute(
            insert(optouts).values(nhs_index=index, list_version="t", loaded_at=func.now())
        )
        return index

    return work


def _insert_many(conn: Connection, indexes: Sequence[str]) -> list[str]:
    """A set-wise executor: one INSERT for the whole batch."""
    at = datetime.now(UTC)
    rows = [{"nhs_index": i, "list_version": "t", "loaded_at": at} for i in indexes]
    conn.execute(insert(optouts), rows)
    COMMITS.append(len(indexes))
    return [f"many:{i}" for i in indexes]


async def _count(store: Store) -> int:
    async with store.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(optouts)) or 0)


async def test_concurrent_work_commits_and_returns_each_result(store: Store) -> None:
    results = await asyncio.gather(*(store.write(_insert(f"i{n}")) for n in range(40)))
    assert results == [f"i{n}" for n in range(40)]
    assert await _count(store) == 40


async def test_set_wise_items_queued_together_share_one_statement(store: Store) -> None:
    COMMITS.clear()
    results = await asyncio.gather(
        *(store.write(SetWise(_insert_many, f"s{n}")) for n in range(30))
    )
    assert results == [f"many:s{n}" for n in range(30)]
    assert sum(COMMITS) == 30
    assert len(COMMITS) < 30  # batched: fewer executions than items


async def test_one_failing_item_fails_alone(store: Store) -> None:
    await store.write(_insert("taken"))
    works = [_insert("a"), _insert("taken"), _insert("b")]  # the middle one collides
    results = await asyncio.gather(*(store.write(w) for w in works), return_exceptions=True)
    assert results[0] == "a"
    assert results[2] == "b"
    assert isinstance(results[1], IntegrityError)
    assert await _count(store) == 3


async def test_kinds_of_work_share_a_transaction_and_a_bad_item_still_fails_alone(
    store: Store,
) -> None:
    await store.write(_insert("taken"))
    submitted: list[Awaitable[str]] = [
        store.write(SetWise(_insert_many, "m1")),
        store.write(_insert("w1")),
        store.write(SetWise(_insert_many, "taken")),  # collides: fails its batch, then alone
        store.write(SetWise(_insert_many, "m2")),
        store.write(_insert("w2")),
    ]
    results = await asyncio.gather(*submitted, return_exceptions=True)
    assert [r for i, r in enumerate(results) if i != 2] == ["many:m1", "w1", "many:m2", "w2"]
    assert isinstance(results[2], IntegrityError)
    assert await _count(store) == 5


async def test_closing_the_store_commits_what_is_queued(sqlite_url: str) -> None:
    async with open_store(sqlite_url) as store:
        pending = [
            asyncio.ensure_future(store.write(SetWise(_insert_many, f"q{n}"))) for n in range(50)
        ]
        await asyncio.sleep(0)  # queued, not yet answered
        assert not any(p.done() for p in pending)
        await store.close()
        assert [await p for p in pending] == [f"many:q{n}" for n in range(50)]
    async with open_store(sqlite_url) as reopened:
        assert await _count(reopened) == 50
