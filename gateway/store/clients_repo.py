"""Internal client systems: token hashes (never tokens), allowed agreements, status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.tables import clients


@dataclass(frozen=True, slots=True)
class StoredClient:
    """A client system as stored."""

    name: str
    allowed_agreements: frozenset[str]
    status: str
    created_at: datetime
    rotated_at: datetime | None
    token_expires_at: datetime | None = None
    cert_sha256: str | None = None


async def create(
    conn: AsyncConnection,
    name: str,
    *,
    token_hash: str,
    allowed_agreements: frozenset[str],
    at: datetime,
    token_expires_at: datetime | None = None,
    cert_sha256: str | None = None,
) -> None:
    """Register a client with the hash of its freshly issued token."""
    await conn.execute(
        insert(clients),
        {
            "name": name,
            "token_hash": token_hash,
            "allowed_agreements": sorted(allowed_agreements),
            "status": "active",
            "created_at": at,
            "token_expires_at": token_expires_at,
            "cert_sha256": cert_sha256,
        },
    )


async def by_token_hash(conn: AsyncConnection, token_hash: str) -> StoredClient | None:
    """The active client whose token hashes to this (lookup by hash; no timing on the token)."""
    query = select(clients).where(clients.c.token_hash == token_hash, clients.c.status == "active")
    row = (await conn.execute(query)).first()
    return _client(row) if row else None


async def by_cert_sha256(conn: AsyncConnection, fingerprint: str) -> StoredClient | None:
    """The active client a client certificate (by its SHA-256 fingerprint) belongs to."""
    query = select(clients).where(
        clients.c.cert_sha256 == fingerprint, clients.c.status == "active"
    )
    row = (await conn.execute(query)).first()
    return _client(row) if row else None


async def set_cert(conn: AsyncConnection, name: str, fingerprint: str | None) -> bool:
    """Map a client certificate to a client (None: no certificate)."""
    result = await conn.execute(
        update(clients).where(clients.c.name == name).values(cert_sha256=fingerprint)
    )
    return bool(result.rowcount)


async def get(conn: AsyncConnection, name: str) -> StoredClient | None:
    """One client by name."""
    row = (await conn.execute(select(clients).where(clients.c.name == name))).first()
    return _client(row) if row else None


async def rotate(
    conn: AsyncConnection,
    name: str,
    *,
    token_hash: str,
    at: datetime,
    token_expires_at: datetime | None = None,
) -> bool:
    """Replace a client's token hash; the old token stops working at once."""
    result = await conn.execute(
        update(clients)
        .where(clients.c.name == name)
        .values(token_hash=token_hash, rotated_at=at, token_expires_at=token_expires_at)
    )
    return bool(result.rowcount)


async def set_status(conn: AsyncConnection, name: str, status: str) -> bool:
    """Suspend or reactivate a client."""
    result = await conn.execute(update(clients).where(clients.c.name == name).values(status=status))
    return bool(result.rowcount)


async def set_agreements(conn: AsyncConnection, name: str, allowed: frozenset[str]) -> bool:
    """Change which agreements a client may submit under."""
    result = await conn.execute(
        update(clients).where(clients.c.name == name).values(allowed_agreements=sorted(allowed))
    )
    return bool(result.rowcount)


async def all_clients(conn: AsyncConnection) -> list[StoredClient]:
    """Every client, by name (token hashes stay in the table)."""
    return [_client(row) for row in await conn.execute(select(clients).order_by(clients.c.name))]


def _client(row: object) -> StoredClient:
    r = row._mapping  # type: ignore[attr-defined]
    return StoredClient(
        r["name"],
        frozenset(r["allowed_agreements"]),
        r["status"],
        r["created_at"],
        r["rotated_at"],
        r["token_expires_at"],
        r["cert_sha256"],
    )
