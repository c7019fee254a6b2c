"""Shared fixtures: real PostgreSQL and RabbitMQ with per-run unique names."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from gateway.logging import LibraryHandler
from tests.services import AMQP_URL, fresh_postgres_database, require_service


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test (dropped afterwards)."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file for one test."""
    return f"sqlite+aiosqlite:///{tmp_path / 'gatehouse.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Runs a test twice: on SQLite and on the real PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'gatehouse.db'}"
    else:
        with fresh_postgres_database() as url:
            yield url


@pytest.fixture
def amqp_url() -> str:
    """The real RabbitMQ; callers must use unique exchange and queue names."""
    require_service("RabbitMQ", "127.0.0.1", 5672)
    return AMQP_URL


@pytest.fixture(autouse=True)
def _library_logs_unrouted() -> Iterator[None]:
    """A test that configures logging in this process leaves no root handler behind (a later
    in-process CLI run would otherwise print library lines on its stderr), and structlog as it
    found it (a level set by one test would otherwise filter what a later one captures)."""
    root = logging.getLogger()
    level = root.level
    logs = structlog.get_config()
    yield
    structlog.configure(**logs)
    for handler in [h for h in root.handlers if isinstance(h, LibraryHandler)]:
        root.removeHandler(handler)
    root.setLevel(level)
