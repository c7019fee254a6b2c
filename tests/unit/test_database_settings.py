"""GATEWAY_DB_* settings reach the engine; the default pools fit a default PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy.pool import QueuePool

from gateway.errors import ConfigurationError
from gateway.settings import load_settings
from gateway.store.dialects import behind_pgbouncer, create_engine

PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/db"
POSTGRES_DEFAULT_USABLE = 100 - 3  # max_connections less superuser_reserved_connections


def test_pool_settings_reach_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DB_POOL_SIZE", "3")
    monkeypatch.setenv("GATEWAY_DB_MAX_OVERFLOW", "2")
    settings = load_settings(database_url=PG)
    pool = create_engine(PG, settings.database_options).sync_engine.pool
    assert isinstance(pool, QueuePool)
    assert (pool.size(), pool._max_overflow) == (3, 2)


def test_default_pools_of_several_processes_fit_a_default_server() -> None:
    options = load_settings().database_options
    per_process = options.pool_size + options.max_overflow
    assert 8 * per_process + 5 <= POSTGRES_DEFAULT_USABLE  # e.g. 4 API + 4 worker processes


def test_a_bad_pool_setting_names_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_DB_POOL_SIZE", "0")
    with pytest.raises(ConfigurationError, match="GATEWAY_DB_POOL_SIZE"):
        load_settings()


def test_the_pgbouncer_flag_is_read_from_the_url_and_not_passed_on() -> None:
    assert behind_pgbouncer(PG + "?pgbouncer=true")
    assert not behind_pgbouncer(PG)
    assert not behind_pgbouncer("sqlite+aiosqlite:///x.db")
    engine = create_engine(PG + "?pgbouncer=true")
    assert "pgbouncer" not in engine.url.query
