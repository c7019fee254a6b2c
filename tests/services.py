"""Reach the real services the integration tests use; fail (not skip) under CI=true."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
PG_HOST = os.environ.get("GATEHOUSE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("GATEHOUSE_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("GATEHOUSE_TEST_PG_USER", "postgres")
AMQP_URL = os.environ.get("GATEHOUSE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip on a laptop without the service; fail loudly under CI=true."""
    if port_open(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if IN_CI:
        pytest.fail(f"{message} (required under CI=true)", pytrace=False)
    pytest.skip(f"{message}; start it to run this test")


def unique_name(prefix: str) -> str:
    """A per-run unique, SQL- and AMQP-safe name."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """Create a uniquely named database, yield its SQLAlchemy asyncpg URL, drop it after."""
    require_service("PostgreSQL", PG_HOST, PG_PORT)
    name = unique_name("gh_test")
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def require_command(name: str) -> None:
    """A command-line tool a test needs (e.g. rabbitmqctl): skip locally, fail under CI=true."""
    import shutil

    if shutil.which(name) is not None:
        return
    if IN_CI:
        pytest.fail(f"{name} is not installed (required under CI=true)", pytrace=False)
    pytest.skip(f"{name} is not installed here")
