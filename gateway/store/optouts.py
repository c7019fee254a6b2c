"""The national data opt-out list, held only as blind indexes of NHS numbers (rule 6)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.database import require_transaction
from gateway.store.tables import optouts


async def replace_list(
    conn: AsyncConnection, nhs_indexes: Iterable[str], *, version: str, at: datetime
) -> int:
    """Swap in a new list version atomically; returns how many entries it holds."""
    require_transaction(conn)
    rows = [{"nhs_index": i, "list_version": version, "loaded_at": at} for i in set(nhs_indexes)]
    await conn.execute(delete(optouts))
    if rows:
        await conn.execute(insert(optouts), rows)
    return len(rows)


async def is_opted_out(conn: AsyncConnection, nhs_index: str) -> bool:
    """True when this NHS number's blind index is on the current list."""
    found = await conn.scalar(select(optouts.c.nhs_index).where(optouts.c.nhs_index == nhs_index))
    return found is not None


async def current_version(conn: AsyncConnection) -> tuple[str | None, int]:
    """The loaded list's version and size."""
    row = (await conn.execute(select(func.max(optouts.c.list_version), func.count()))).one()
    return row[0], int(row[1])
