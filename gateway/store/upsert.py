"""INSERT ... ON CONFLICT for both backends (both dialects spell it the same way)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection


async def upsert(
    conn: AsyncConnection,
    table: Table,
    values: Mapping[str, Any],
    *,
    keys: Sequence[str],
    keep: Sequence[str] = (),
) -> None:
    """Insert, or update every column except the keys and those in `keep`."""
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = insert(table).values(dict(values))
    changes = {k: statement.excluded[k] for k in values if k not in keys and k not in keep}
    await conn.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=changes))


async def insert_new(
    conn: AsyncConnection, table: Table, values: Mapping[str, Any], *, keys: Sequence[str]
) -> bool:
    """Insert unless the key exists; True when this call inserted the row."""
    statement = _insert_new(conn.dialect.name, table, tuple(keys))
    result = await conn.execute(statement, dict(values))
    return bool(result.rowcount)


def insert_new_many(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    keys: Sequence[str],
) -> set[tuple[Any, ...]]:
    """Insert every row whose key does not exist yet; returns the keys (tuples of `keys`'
    values) this call inserted.

    One statement for the whole list (SQLAlchemy's "insertmanyvalues" with RETURNING).
    """
    if not rows:
        return set()
    statement = _insert_new_returning(conn.dialect.name, table, tuple(keys))
    result = conn.execute(statement, [dict(row) for row in rows])
    return {tuple(row) for row in result}


@lru_cache(maxsize=64)
def _insert_new_returning(dialect: str, table: Table, keys: tuple[str, ...]) -> Any:
    return _insert_new(dialect, table, keys).returning(*(table.c[k] for k in keys))


@lru_cache(maxsize=64)
def _insert_new(dialect: str, table: Table, keys: tuple[str, ...]) -> Any:
    # Built once per table: values are bound at execution, so the compiled form is reused
    # without working out a cache key from literal values on every call (a hot path).
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return insert(table).on_conflict_do_nothing(index_elements=list(keys))
