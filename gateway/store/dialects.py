"""Engines for a database URL: SQLite in WAL mode, or a pooled asyncpg PostgreSQL."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import create_engine as sqlalchemy_create_engine
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from gateway.errors import ConfigurationError

WRITE_OPTION = "gatehouse_write"
"""Execution option marking a write transaction (SQLite then takes the write lock up front)."""

SQLITE_PRAGMAS = (
    "PRAGMA synchronous=NORMAL",  # durable across application crashes; WAL checkpoints fsync
    "PRAGMA foreign_keys=ON",
    "PRAGMA secure_delete=ON",  # purged envelopes and held records are overwritten, not left
)


PGBOUNCER_PARAM = "pgbouncer"
"""`?pgbouncer=true` on a PostgreSQL URL: reached through PgBouncer in transaction mode."""


def is_sqlite(url: str) -> bool:
    """True for the embedded SQLite backend."""
    return url.startswith("sqlite")


def behind_pgbouncer(url: str) -> bool:
    """True when the URL says `pgbouncer=true`: no statement outlives its transaction."""
    if is_sqlite(url):
        return False
    value = make_url(url).query.get(PGBOUNCER_PARAM, "")
    return str(value).lower() in {"true", "1", "yes"}


def _unique_statement_name() -> str:
    # PgBouncer hands each transaction any server connection: asyncpg's numbered names would
    # collide with statements another client prepared there.
    return f"__gatehouse_{uuid.uuid4().hex}__"


@dataclass(frozen=True, slots=True)
class DatabaseOptions:
    """Pool and time limits of one process's engine (from the GATEWAY_DB_* settings)."""

    pool_size: int = 5
    max_overflow: int = 5
    timeout: float = 10.0  # seconds for a connection, a pooled connection, or one statement


def create_engine(url: str, options: DatabaseOptions | None = None) -> AsyncEngine:
    """An async engine for `url` with the pragmas, pool and time limits each backend needs."""
    options = options or DatabaseOptions()
    if url.startswith("sqlite+aiosqlite://"):
        engine = create_async_engine(
            url,
            hide_parameters=True,  # an error's text must never carry a row's values into a log
            pool_size=options.pool_size,
            max_overflow=0,
            pool_timeout=options.timeout,
            pool_reset_on_return=None,
            json_serializer=json_text,
            json_deserializer=orjson.loads,
        )
        _configure_sqlite(engine.sync_engine, busy_ms=round(options.timeout * 1000))
        return engine
    if url.startswith("postgresql+asyncpg://"):
        connect_args: dict[str, Any] = {
            # A stalled server or network must not hold a request (or a writer) for ever.
            "timeout": options.timeout,
            "command_timeout": options.timeout,
        }
        if behind_pgbouncer(url):
            connect_args.update(
                statement_cache_size=0,  # asyncpg's own cache
                prepared_statement_cache_size=0,  # SQLAlchemy's
                prepared_statement_name_func=_unique_statement_name,
            )
        return create_async_engine(
            make_url(url).difference_update_query([PGBOUNCER_PARAM]),
            pool_size=options.pool_size,
            max_overflow=options.max_overflow,
            pool_timeout=options.timeout,
            hide_parameters=True,
            pool_reset_on_return=None,  # every use ends in COMMIT or ROLLBACK already
            pool_recycle=1800,
            json_serializer=json_text,
            json_deserializer=orjson.loads,
            connect_args=connect_args,
        )
    raise ConfigurationError(
        "GATEWAY_DATABASE_URL: must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
    )


def json_text(value: Any) -> str:
    """JSON columns as compact text, by orjson (several times faster than the json module).

    Integer keys become strings, as the json module would make them; a value orjson cannot
    spell (an integer past 64 bits) is left to the json module.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value, separators=(",", ":"))


def _configure_sqlite(sync_engine: Engine, *, busy_ms: int) -> None:
    """Pragmas on every new connection; BEGIN IMMEDIATE for writes so two writers never deadlock.

    The sqlite3 driver's own implicit transactions are switched off (the SQLAlchemy recipe), so
    SQLAlchemy emits BEGIN itself: IMMEDIATE for write transactions (read-then-write under WAL
    would otherwise fail with SQLITE_BUSY_SNAPSHOT), DEFERRED for reads.
    """

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        prepare_sqlite_connection(dbapi_connection, busy_ms=busy_ms)

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def prepare_sqlite_connection(dbapi_connection: Any, *, busy_ms: int) -> None:
    """No implicit transactions, the busy timeout, our pragmas, and WAL mode."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # First: wait this long for another process's lock, then fail (an outage, a 503).
    cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(pragma)
    # Switching a new file to WAL needs a moment alone with it; the pragma then quietly
    # answers the old mode instead of failing. Without WAL, readers and writers can
    # deadlock, so insist.
    for _ in range(50):
        cursor.execute("PRAGMA journal_mode=WAL")
        if str(cursor.fetchone()[0]).lower() == "wal":
            break
        time.sleep(0.02)
    else:
        raise ConfigurationError("SQLite database could not be switched to WAL mode")
    cursor.close()


def create_sqlite_sync_engine(url: str) -> Engine:
    """A sync engine on the same SQLite file as `url`'s async one, for writes run in place.

    No busy timeout (a wait for another process's lock must not block the event loop) and no
    automatic checkpoints (their fsync would): the caller does both off the loop. Connections
    may be used from another thread, one at a time.
    """
    engine = sqlalchemy_create_engine(
        make_url(url).set(drivername="sqlite+pysqlite"),
        hide_parameters=True,
        pool_size=2,
        max_overflow=0,
        pool_reset_on_return=None,
        json_serializer=json_text,
        json_deserializer=orjson.loads,
        connect_args={"check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        prepare_sqlite_connection(dbapi_connection, busy_ms=0)
        dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

    return engine
