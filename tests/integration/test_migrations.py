"""Migrations: upgrade twice (and from two processes at once) is harmless; schema matches code."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store import migrate, partners_repo
from gateway.store.database import Store
from gateway.store.dialects import WRITE_OPTION
from gateway.store.migrate import current_revision, head_revision
from gateway.store.tables import audit_head, metadata, partner_keys, partners

CONTACTS = {"ods_code", "ico_registration", "contact", "dpo_contact"}
T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


async def test_upgrade_twice_is_harmless_and_matches_the_tables(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        assert await current_revision(store.engine) is None
        await store.upgrade()
        await store.upgrade()
        assert await current_revision(store.engine) == head_revision()
        diff = await _schema_diff(store)
        async with store.engine.connect() as conn:
            heads = list(await conn.execute(select(audit_head)))
        assert await store.ping()
    finally:
        await store.close()
    assert diff == []
    assert [(h.seq, h.hash) for h in heads] == [(0, "0" * 64)]


async def test_partner_contacts_downgrade_and_upgrade_keep_partners_and_keys(
    database_url: str,
) -> None:
    """0002 adds the contact columns to partners; its downgrade drops just those (SQLite: with
    partner_keys naming the partner, so the table cannot be copied and swapped)."""
    partner = partners_repo.StoredPartner(
        "test-trust",
        "Test NHS Trust",
        "nhs_trust",
        "webhook",
        {"endpoint": "https://in.test-trust.example"},
        ods_code="ZZ9",
        dpo_contact="dpo@test-trust.example",
    )
    key = partners_repo.StoredPartnerKey(
        "test-trust", "tt-enc-1", "enc", "ECDH-ES+A256KW", {"kty": "EC"}, T0
    )
    store = await Store.open(database_url)
    try:
        await store.upgrade()

        async def save_partner_and_key(conn: AsyncConnection) -> None:
            await partners_repo.save_partner(conn, partner, at=T0)
            await partners_repo.add_key(conn, key, at=T0)

        await store.write(save_partner_and_key)

        await _downgrade(store, "0001")
        assert await current_revision(store.engine) == "0001"
        assert CONTACTS.isdisjoint(await _columns(store, "partners"))
        assert await _values(store, partners.c.name) == ["Test NHS Trust"]
        assert await _values(store, partner_keys.c.kid) == ["tt-enc-1"]

        await store.upgrade()
        assert await current_revision(store.engine) == head_revision()
        assert await _schema_diff(store) == []
        async with store.read() as conn:
            back = await partners_repo.get_partner(conn, "test-trust")
            assert [k.kid for k in await partners_repo.keys_of(conn, "test-trust")] == ["tt-enc-1"]
    finally:
        await store.close()
    # The dropped values are gone (re-applying the catalog fills them again); the rest is kept.
    assert back is not None
    assert (back.name, back.target, back.ods_code, back.dpo_contact) == (
        partner.name, partner.target, None, None
    )  # fmt: skip


async def _schema_diff(store: Store) -> list[Any]:
    """What autogenerate finds between the migrated database and gateway.store.tables."""
    async with store.engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
        )


async def _downgrade(store: Store, revision: str) -> None:
    def work(connection: Connection) -> None:
        config = migrate.alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    async with store.engine.connect() as conn:
        await conn.execution_options(**{WRITE_OPTION: True})
        async with conn.begin():
            await conn.run_sync(work)


async def _columns(store: Store, table: str) -> set[str]:
    async with store.engine.connect() as conn:
        found = await conn.run_sync(lambda sync: inspect(sync).get_columns(table))
    return {column["name"] for column in found}


async def _values(store: Store, column: Any) -> list[Any]:
    """One column of every row (selected alone: the table may be at an older revision)."""
    async with store.engine.connect() as conn:
        return list((await conn.execute(select(column))).scalars())


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
