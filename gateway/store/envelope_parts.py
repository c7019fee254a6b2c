"""A large envelope is stored in parts, each in a statement of its own.

Sent as one parameter, a multi-megabyte envelope costs asyncpg about three copies of itself
(its argument buffer, the Bind message, the transport's unsent remainder), and read back as one
value two more; in parts of `PART_BYTES` a statement holds only a part. The outbox row of such
an envelope keeps an empty `envelope` and the count of its parts; a small one stays in its row.
Read back, the parts stream into one buffer that becomes the envelope without a copy.
"""

from __future__ import annotations

import io
from functools import lru_cache
from typing import Any

from sqlalchemy import Insert, Select, bindparam, insert, select
from sqlalchemy.engine import Connection

from gateway.store.tables import outbox_parts

PART_BYTES = 256 * 1024
PARTS_FETCHED = 4  # held at once while an envelope is read back


def outbox_columns(envelope: bytes) -> dict[str, Any]:
    """The outbox row's envelope columns: the envelope itself, or none and its part count."""
    if len(envelope) <= PART_BYTES:
        return {"envelope": envelope, "parts": 0}
    return {"envelope": b"", "parts": -(-len(envelope) // PART_BYTES)}


def write(conn: Connection, disclosure_id: str, envelope: bytes) -> None:
    """Store the parts of a large envelope, after its outbox row (nothing for a small one)."""
    if len(envelope) <= PART_BYTES:
        return
    whole = memoryview(envelope)  # slices of it are not copies
    for seq, start in enumerate(range(0, len(envelope), PART_BYTES)):
        part = whole[start : start + PART_BYTES]
        conn.execute(_insert(), {"disclosure_id": disclosure_id, "seq": seq, "part": part})


def read(conn: Connection, disclosure_id: str, parts: int) -> bytes:
    """The envelope put together again from its `parts`, `PARTS_FETCHED` at a time.

    One query per few parts, not one cursor: asyncpg's cursor would fetch 50 rows at once."""
    with io.BytesIO() as joined:
        for first in range(0, parts, PARTS_FETCHED):
            bounds = {"id": disclosure_id, "first": first, "stop": first + PARTS_FETCHED}
            for part in conn.scalars(_parts(), bounds):
                joined.write(part)
        return joined.getvalue()  # BytesIO hands over its buffer: no second envelope


@lru_cache(maxsize=1)
def _insert() -> Insert:
    return insert(outbox_parts)


@lru_cache(maxsize=1)
def _parts() -> Select[Any]:
    return (
        select(outbox_parts.c.part)
        .where(
            outbox_parts.c.disclosure_id == bindparam("id"),
            outbox_parts.c.seq >= bindparam("first"),
            outbox_parts.c.seq < bindparam("stop"),
        )
        .order_by(outbox_parts.c.seq)
    )
