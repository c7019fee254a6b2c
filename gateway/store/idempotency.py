"""Idempotency keys: a retried submission gets the first answer; a reused key with a different
body is a conflict. Call `remember` in the same transaction as the disclosure it answers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.errors import ConflictError
from gateway.store.tables import idempotency_keys
from gateway.store.upsert import insert_new


class IdempotencyKeyReusedError(ConflictError):
    """The key was used before with a different request body."""

    code = "idempotency_key_reused"


@dataclass(frozen=True, slots=True)
class StoredReply:
    """The reply first given for a key."""

    response: Mapping[str, Any]
    created_at: datetime


async def lookup(
    conn: AsyncConnection, client: str, key: str, request_hash: str
) -> StoredReply | None:
    """The earlier reply for this key, None if new; raises if the body differs."""
    query = select(idempotency_keys).where(
        idempotency_keys.c.client == client, idempotency_keys.c.key == key
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise IdempotencyKeyReusedError("Idempotency-Key was used with a different request")
    return StoredReply(row.response, row.created_at)


async def remember(
    conn: AsyncConnection,
    client: str,
    key: str,
    *,
    request_hash: str,
    response: Mapping[str, Any],
    at: datetime,
) -> bool:
    """Store the reply; False if a concurrent request stored one first (use `lookup` then)."""
    values = {
        "client": client,
        "key": key,
        "request_hash": request_hash,
        "response": dict(response),
        "created_at": at,
    }
    return await insert_new(conn, idempotency_keys, values, keys=("client", "key"))
