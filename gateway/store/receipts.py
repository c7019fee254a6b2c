"""Verified partner receipts; a replayed receipt id changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.tables import receipts
from gateway.store.upsert import insert_new


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


async def record(conn: AsyncConnection, receipt: StoredReceipt) -> bool:
    """Store a verified receipt; False when this receipt id was seen before (a replay)."""
    values = {name: getattr(receipt, name) for name in StoredReceipt.__dataclass_fields__}
    return await insert_new(conn, receipts, values, keys=("receipt_id",))


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
