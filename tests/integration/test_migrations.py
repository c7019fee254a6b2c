"""Migrations: upgrade twice (and from two processes at once) is harmless; schema matches code."""

from __future__ import annotations

import asyncio

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import select

from gateway.store.database import Store
from gateway.store.migrate import current_revision, head_revision
from gateway.store.tables import audit_head, metadata


async def test_upgrade_twice_is_harmless_and_matches_the_tables(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        assert await current_revision(store.engine) is None
        await store.upgrade()
        await store.upgrade()
        assert await current_revision(store.engine) == head_revision()
        async with store.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
            heads = list(await conn.execute(select(audit_head)))
        assert await store.ping()
    finally:
        await store.close()
    assert diff == []
    assert [(h.seq, h.hash) for h in heads] == [(0, "0" * 64)]


@pytest.mark.postgres
async def test_concurrent_upgrades_do_not_collide(postgres_url: str) -> None:
    """Several gateway hosts upgrading one PostgreSQL at start-up: one migrates, the rest wait.

    (The embedded SQLite file is one machine's: `db upgrade` runs once before the service.)
    """
    stores = [await Store.open(postgres_url) for _ in range(3)]
    try:
        await asyncio.gather(*(s.upgrade() for s in stores))
        assert await current_revision(stores[0].engine) == head_revision()
    finally:
        for s in stores:
            await s.close()


async def test_ping_is_false_when_the_database_is_unreachable() -> None:
    store = await Store.open("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    try:
        assert await store.ping() is False
    finally:
        await store.close()
