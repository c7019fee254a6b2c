"""Accepted disclosures recorded by a writer process: committed and chained, or left to it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway import audit, worker_link, write_pool
from gateway.audit_verify import verify
from gateway.group_commit import GroupCommit
from gateway.keys import CouncilKeyring
from gateway.protection import Protection
from gateway.store import disclosures
from gateway.store.database import Store
from gateway.store.tables import audit_checkpoints, audit_pending, disclosure_events, outbox
from gateway.write_pool import WritePool
from tests.integration.store_support import CLIENT, T0, new_disclosure, open_store, protection

ENVELOPE = b"eyJhbGciOiJFQ0RILUVTIn0.synthetic-envelope"


def accepted(prot: Protection, id_: str | None = None) -> disclosures.Accepted:
    return disclosures.Accepted(new_disclosure(prot, id_=id_), ENVELOPE, "sha256-x", CLIENT, T0)


@pytest.fixture
async def store(sqlite_url: str) -> AsyncIterator[Store]:
    async with open_store(sqlite_url) as opened:
        yield opened


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    """The council's keyring, with the active key the writer signs checkpoints with."""
    ring = CouncilKeyring(tmp_path / "council-keys")
    ring.generate("ES256", datetime.now(UTC) - timedelta(days=1))
    return ring.directory


@pytest.fixture
async def pool(store: Store, keys_dir: Path) -> AsyncIterator[WritePool]:
    writes = WritePool(store.url, keys_dir)
    await writes.start()
    yield writes
    await writes.close()


async def _count(store: Store, table: object) -> int:
    async with store.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


async def test_the_writer_process_commits_rows_outbox_and_a_chained_audit_trail(
    store: Store, pool: WritePool, tmp_path: Path
) -> None:
    prot = protection(tmp_path)
    items = [accepted(prot) for _ in range(40)]
    assert pool.ready
    assert await asyncio.gather(*(pool.record(i) for i in items)) == [True] * 40
    async with store.read() as conn:
        found = await disclosures.get_many(conn, [i.new.id for i in items])
    assert all(d is not None and d.status == "queued" for d in found)
    assert await _count(store, outbox) == 40
    assert await _count(store, disclosure_events) == 40
    report = await verify(store)
    assert report.ok
    assert report.entries == 40  # chained in the writer's own transactions


async def test_a_bad_item_fails_alone(store: Store, pool: WritePool, tmp_path: Path) -> None:
    prot = protection(tmp_path)
    first = accepted(prot)
    assert await pool.record(first)
    again = accepted(prot, id_=first.new.id)  # the same id: refused by the primary key
    results = await asyncio.gather(
        pool.record(accepted(prot)), pool.record(again), pool.record(accepted(prot))
    )
    assert results == [True, False, True]
    assert await _count(store, outbox) == 3


async def test_group_commit_records_through_the_store_when_the_writer_is_gone(
    store: Store, pool: WritePool, tmp_path: Path
) -> None:
    prot = protection(tmp_path)
    group = GroupCommit(store)
    group.pool = pool
    await group.record(accepted(prot))
    pool._pool.process.kill()  # what an OOM kill would do
    await asyncio.to_thread(pool._pool.process.join, 5)
    assert not await pool.record(accepted(prot))  # gone: the caller must record it itself
    await group.record(accepted(prot))  # and GroupCommit does
    assert await _count(store, outbox) == 2
    assert (await verify(store)).ok


async def test_an_item_the_writer_committed_but_did_not_confirm_is_recorded_once(
    store: Store, tmp_path: Path
) -> None:
    """The writer went silent after its commit: the store's attempt finds the row, not an error."""
    prot = protection(tmp_path)
    item = accepted(prot)
    await store.submit_sync(disclosures.record_accepted_setwise, item)  # what the writer did

    class Silent(WritePool):
        async def record(self, item: disclosures.Accepted) -> bool:
            return False  # no answer (wedged, or killed after the commit)

    group = GroupCommit(store)
    group.pool = Silent(store.url, tmp_path)
    await group.record(item)  # no IntegrityError: it is recorded
    assert await _count(store, outbox) == 1
    group.pool = None  # without a writer process, a duplicate is a real error
    with pytest.raises(Exception, match="UNIQUE"):
        await group.record(item)


def _never_ready(connection: Connection, _url: str) -> None:
    """A writer stuck before its handshake: it only waits for the parent to hang up."""
    with contextlib.suppress(EOFError, OSError):
        connection.recv_bytes()


async def test_a_writer_that_never_starts_leaves_recording_to_the_store(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(write_pool, "_work", _never_ready)
    monkeypatch.setattr(worker_link, "START_TIMEOUT_SECONDS", 0.5)
    writes = WritePool(store.url, tmp_path)
    await writes.start()
    try:
        assert not writes.ready
        group = GroupCommit(store)
        group.pool = writes
        await asyncio.wait_for(group.record(accepted(protection(tmp_path))), timeout=5)
        assert await _count(store, outbox) == 1
    finally:
        await writes.close()


async def test_the_writer_seals_the_chain_for_the_whole_store(
    store: Store, pool: WritePool, keys_dir: Path, tmp_path: Path
) -> None:
    """Entries other writers staged are chained, and checkpoints signed, by the writer process."""
    async with store.transaction() as conn:  # through aiosqlite: staged, not chained
        await audit.append(conn, CLIENT, "disclosure.denied", at=T0, details={"reasons": []})
    prot = protection(tmp_path)
    items = [accepted(prot) for _ in range(audit.CHECKPOINT_EVERY)]
    assert all(await asyncio.gather(*(pool.record(i) for i in items)))
    for _ in range(200):  # it seals every 0.1 s
        if not await _count(store, audit_pending) and await _count(store, audit_checkpoints):
            break
        await asyncio.sleep(0.05)
    report = await verify(store)
    assert report.ok
    assert report.entries == audit.CHECKPOINT_EVERY + 1
    assert report.last_checkpoint_seq == audit.CHECKPOINT_EVERY
