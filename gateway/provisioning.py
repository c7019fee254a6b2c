"""Provisioning steps shared by the admin CLI, the demo and the benchmarks (each one audited)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway import audit
from gateway.clients import hash_token, new_token
from gateway.partner_keys import PartnerKey
from gateway.store import clients_repo, partners_repo


async def add_client(
    conn: AsyncConnection,
    name: str,
    agreements: frozenset[str],
    *,
    actor: audit.Actor,
    at: datetime,
) -> str:
    """Register a client system; returns its new token (shown once, stored only hashed)."""
    token = new_token()
    await clients_repo.create(
        conn, name, token_hash=hash_token(token), allowed_agreements=agreements, at=at
    )
    await audit.append(
        conn, actor, "client.added", at=at, targets={"client": name},
        details={"agreements": sorted(agreements)},
    )  # fmt: skip
    return token


async def add_partner_key(
    conn: AsyncConnection, key: PartnerKey, *, actor: audit.Actor, at: datetime
) -> partners_repo.PartnerKey:
    """Register a partner's public key (already validated by PartnerKey)."""
    row = key.to_store(registered_at=at)
    await partners_repo.add_key(conn, row, at=at)
    targets = {"partner": key.partner_id, "kid": key.kid}
    details = {"use": row.use, "alg": row.alg}
    await audit.append(conn, actor, "partner_key.added", at=at, targets=targets, details=details)
    return row
