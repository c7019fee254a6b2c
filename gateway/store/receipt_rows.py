"""Verified partner receipts; a replayed receipt id changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.tables import receipts
from gateway.store.upsert import insert_new, insert_new_many


@dataclass(frozen=True, slots=True)
class StoredReceipt:
    """A receipt whose signature, issuer, message id and digest were already verified."""

    receipt_id: str
    disclosure_id: str
    status: str
    reason: str | None
    token: str
    received_at: datetime
    verified_kid: str
    partner_id: str
    late: bool = False


_COLUMNS = tuple(StoredReceipt.__dataclass_fields__)


def _values(receipt: StoredReceipt) -> dict[str, object]:
    return {name: getattr(receipt, name) for name in _COLUMNS}


_KEY = ("partner_id", "receipt_id")


async def record(conn: AsyncConnection, receipt: StoredReceipt) -> bool:
    """Store a verified receipt; False when its partner sent this receipt id before (a replay)."""
    return await insert_new(conn, receipts, _values(receipt), keys=_KEY)


def record_many(conn: Connection, items: Sequence[StoredReceipt]) -> list[bool]:
    """`record` for a batch in one statement; a (partner, receipt id) repeated is a replay."""
    first: dict[tuple[str, str], int] = {}
    rows = []
    for i, receipt in enumerate(items):
        key = (receipt.partner_id, receipt.receipt_id)
        if key not in first:
            first[key] = i
            rows.append(_values(receipt))
    inserted = insert_new_many(conn, receipts, rows, keys=_KEY)
    return [
        (r.partner_id, r.receipt_id) in inserted and first[(r.partner_id, r.receipt_id)] == i
        for i, r in enumerate(items)
    ]


async def for_disclosure(conn: AsyncConnection, disclosure_id: str) -> StoredReceipt | None:
    """The first receipt recorded for a disclosure, if any."""
    query = (
        select(receipts)
        .where(receipts.c.disclosure_id == disclosure_id)
        .order_by(receipts.c.received_at)
        .limit(1)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return StoredReceipt(**{k: row._mapping[k] for k in StoredReceipt.__dataclass_fields__})
