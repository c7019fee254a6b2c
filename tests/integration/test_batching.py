"""Group commit: concurrent work shares a transaction; one failing item fails only itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.database import Store
from gateway.store.tables import optouts


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
