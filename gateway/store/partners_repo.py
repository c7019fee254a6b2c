"""Partners, their registered public keys, and the mirror of the council's public keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store.tables import council_keys, partner_keys, partners
from gateway.store.upsert import upsert


@dataclass(frozen=True, slots=True)
class StoredPartner:
    """A receiving organisation and how to reach it."""

    id: str
    name: str
    kind: str
    channel: str
    target: Mapping[str, Any]
    status: str = "active"
    ods_code: str | None = None  # NHS organisation code
    ico_registration: str | None = None
    contact: str | None = None
    dpo_contact: str | None = None  # their data protection officer, e.g. for an incident

    @classmethod
    def from_row(cls, row: RowMapping) -> StoredPartner:
        """Build from a `partners` row."""
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class StoredPartnerKey:
    """A partner's public key (sig: verifies receipts; enc: we encrypt to it)."""

    partner_id: str
    kid: str
    use: str
    alg: str
    jwk: Mapping[str, Any]
    not_before: datetime
    not_after: datetime | None = None
    status: str = "active"
    revoked_reason: str | None = None

    @classmethod
    def from_row(cls, row: RowMapping) -> StoredPartnerKey:
        """Build from a `partner_keys` row."""
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


async def save_partner(conn: AsyncConnection, partner: StoredPartner, *, at: datetime) -> None:
    """Create or update a partner."""
    values = {name: getattr(partner, name) for name in StoredPartner.__dataclass_fields__}
    values.update(target=dict(partner.target), created_at=at, updated_at=at)
    await upsert(conn, partners, values, keys=("id",), keep=("created_at",))


async def get_partner(conn: AsyncConnection, id_: str) -> StoredPartner | None:
    """One partner."""
    row = (await conn.execute(select(partners).where(partners.c.id == id_))).first()
    if row is None:
        return None
    return StoredPartner.from_row(row._mapping)


async def all_partners(conn: AsyncConnection) -> list[StoredPartner]:
    """Every partner, by id."""
    rows = await conn.execute(select(partners).order_by(partners.c.id))
    return [StoredPartner.from_row(r._mapping) for r in rows]


async def keys_of(conn: AsyncConnection, partner_id: str) -> list[StoredPartnerKey]:
    """Every key a partner registered, revoked and expired ones included, oldest first."""
    query = (
        select(partner_keys)
        .where(partner_keys.c.partner_id == partner_id)
        .order_by(partner_keys.c.not_before, partner_keys.c.kid)
    )
    return [StoredPartnerKey.from_row(r._mapping) for r in await conn.execute(query)]


async def add_key(conn: AsyncConnection, key: StoredPartnerKey, *, at: datetime) -> None:
    """Register (or update) a partner's public key."""
    values = {name: getattr(key, name) for name in StoredPartnerKey.__dataclass_fields__}
    values.update(jwk=dict(key.jwk), created_at=at)
    await upsert(conn, partner_keys, values, keys=("partner_id", "kid"), keep=("created_at",))


async def usable_keys(
    conn: AsyncConnection, partner_id: str, use: str, *, at: datetime
) -> list[StoredPartnerKey]:
    """Active keys valid at `at`, newest first; revoked keys are never returned."""
    query = (
        select(partner_keys)
        .where(
            partner_keys.c.partner_id == partner_id,
            partner_keys.c.use == use,
            partner_keys.c.status == "active",
            partner_keys.c.not_before <= at,
            or_(partner_keys.c.not_after.is_(None), partner_keys.c.not_after > at),
        )
        .order_by(partner_keys.c.not_before.desc())
    )
    return [StoredPartnerKey.from_row(r._mapping) for r in await conn.execute(query)]


async def revoke_key(conn: AsyncConnection, partner_id: str, kid: str, reason: str) -> bool:
    """Revoke a key for good (compromise, partner request)."""
    result = await conn.execute(
        update(partner_keys)
        .where(partner_keys.c.partner_id == partner_id, partner_keys.c.kid == kid)
        .values(status="revoked", revoked_reason=reason)
    )
    return bool(result.rowcount)


async def retire_key(conn: AsyncConnection, partner_id: str, kid: str, until: datetime) -> bool:
    """Retire a key in a routine rotation: never used for new envelopes, usable until `until`."""
    result = await conn.execute(
        update(partner_keys)
        .where(partner_keys.c.partner_id == partner_id, partner_keys.c.kid == kid)
        .values(status="retired", not_after=until)
    )
    return bool(result.rowcount)


async def mirror_council_key(
    conn: AsyncConnection,
    *,
    kid: str,
    alg: str,
    public_jwk: Mapping[str, Any],
    status: str,
    at: datetime,
    published_until: datetime | None = None,
) -> None:
    """Record the public part of a council key so any process can verify with it."""
    if "d" in public_jwk:
        raise ValueError("council key mirror takes public keys only")
    values = {
        "kid": kid,
        "alg": alg,
        "use": "sig",
        "jwk": dict(public_jwk),
        "status": status,
        "created_at": at,
        "published_until": published_until,
    }
    await upsert(conn, council_keys, values, keys=("kid",), keep=("created_at",))


async def council_jwks(conn: AsyncConnection, *, use: str | None = None) -> dict[str, Any]:
    """Every mirrored council public key (of this `use`, if given), as a JWKS."""
    query = select(council_keys.c.jwk).order_by(council_keys.c.created_at)
    if use is not None:
        query = query.where(council_keys.c.use == use)
    rows = await conn.execute(query)
    return {"keys": [dict(r.jwk) for r in rows]}


async def all_keys(conn: AsyncConnection) -> list[StoredPartnerKey]:
    """Every registered partner key, whatever its status."""
    return [
        StoredPartnerKey.from_row(r._mapping) for r in await conn.execute(partner_keys.select())
    ]
