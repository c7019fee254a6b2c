"""The SQLite database and its -wal and -shm files are readable by their owner only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sqlalchemy import text

from gateway.store.database import Store
from tests.security.support import until
from tests.service_process import ServiceProcess, free_port


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _database_files(path: Path) -> list[Path]:
    return [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]


async def test_the_store_creates_its_sqlite_files_0600(tmp_path: Path) -> None:
    previous = os.umask(0o022)  # a permissive umask: the store must not rely on the caller's
    try:
        database = tmp_path / "var" / "gatehouse.db"
        store = await Store.open(f"sqlite+aiosqlite:///{database}")
        try:
            await store.upgrade()
            async with store.read() as conn:  # WAL: the -wal and -shm files exist while open
                await conn.execute(text("SELECT 1"))
                files = _database_files(database)
                assert all(f.exists() for f in files)
                assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
        finally:
            await store.close()
        assert _mode(database.parent) == 0o700
    finally:
        os.umask(previous)


async def test_an_existing_world_readable_database_is_made_private(tmp_path: Path) -> None:
    database = tmp_path / "old.db"
    database.touch(mode=0o644)
    database.chmod(0o644)
    store = await Store.open(f"sqlite+aiosqlite:///{database}")
    await store.close()
    assert _mode(database) == 0o600


def test_a_served_process_creates_private_files(tmp_path: Path) -> None:
    """`gateway serve` on nothing: database, -wal, -shm, keys all 0600, under a 0022 umask."""
    database = tmp_path / "fresh" / "gatehouse.db"
    env = {
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "GATEWAY_KEYS_DIR": str(tmp_path / "fresh" / "keys"),
        "GATEWAY_PORT": str(free_port()),
        "GATEWAY_OPS_PORT": str(free_port()),
    }
    previous = os.umask(0o022)  # the child inherits it; the gateway must tighten its own
    try:
        service = ServiceProcess(env, role="api", log=tmp_path / "gateway.log").start(60)
    finally:
        os.umask(previous)
    try:
        files = _database_files(database)
        until(lambda: all(f.exists() for f in files), "the database files exist")
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
        keys = [p for p in (tmp_path / "fresh" / "keys").rglob("*") if p.is_file()]
        assert keys
        assert {p.name: _mode(p) & 0o077 for p in keys} == {p.name: 0 for p in keys}
    finally:
        assert service.stop() == 0
