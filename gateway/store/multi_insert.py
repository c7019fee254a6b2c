"""Insert rows into several tables at once: one round trip on PostgreSQL, in order on SQLite.

A disclosure's first write touches four tables. Sent as four statements, a single writer spends
most of its time on round trips and on SQLAlchemy's per-statement work; on PostgreSQL we send
one statement instead, with the earlier inserts as data-modifying CTEs (one statement is atomic,
and foreign keys are checked at its end, when every row exists). The statement for each shape of
write is built once and cached, so the hot path only binds parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Insert, Table, bindparam, insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.tables import metadata

Writes = Sequence[tuple[Table, Sequence[Mapping[str, Any]]]]
Shape = tuple[tuple[str, tuple[str, ...]], ...]


async def insert_all(conn: AsyncConnection, writes: Writes) -> None:
    """Insert every row, tables in the order given, inside the caller's transaction."""
    await conn.run_sync(insert_all_sync, writes)


def insert_all_sync(conn: Connection, writes: Writes) -> None:
    """`insert_all` on a sync connection (under `run_sync`)."""
    # A batch (group commit) goes table by table as executemany: one statement shape per table,
    # cached, whatever the batch size; a single disclosure goes as one combined statement.
    if conn.dialect.name != "postgresql" or any(len(rows) > 1 for _table, rows in writes):
        for table, rows in writes:
            conn.execute(_plain(table.name), [dict(row) for row in rows])
        return
    flat = [(table, row) for table, rows in writes for row in rows]
    shape = tuple((table.name, tuple(row)) for table, row in flat)
    params = {
        _param(i, column): value
        for i, (_t, row) in enumerate(flat)
        for column, value in row.items()
    }
    conn.execute(_combined(shape), params)


def _param(i: int, column: str) -> str:
    return f"w{i}_{column}"


@lru_cache(maxsize=64)
def _plain(table_name: str) -> Insert:
    return insert(metadata.tables[table_name])


@lru_cache(maxsize=64)
def _combined(shape: Shape) -> Insert:
    # One single-row INSERT per row: SQLAlchemy cannot cache a multi-row VALUES statement.
    statements = []
    for i, (name, columns) in enumerate(shape):
        table = metadata.tables[name]
        values = {c: bindparam(_param(i, c), type_=table.c[c].type) for c in columns}
        statements.append(insert(table).values(values))
    *earlier, last = statements
    ctes = [statement.cte(f"w{i}") for i, statement in enumerate(earlier)]
    return last.add_cte(*ctes) if ctes else last
