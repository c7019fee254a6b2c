"""Partners' public keys: registered by an administrator, retired or revoked, listed.

Every key is validated as a `PartnerKey` before it gets here (type, curve, size, no private
parts). A kid is registered once per partner: a revoked key is never registered again.
Revoking a key holds every undelivered envelope sealed to it as `failed` with
`partner_key_revoked`, in the same unit of work; retiring one (a routine rotation) only stops
new envelopes using it, those already sealed to it may go until the retirement date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from gateway.application.admin_ports import AuditTrail, StorePort, chained_entry
from gateway.audit import Actor
from gateway.errors import ConflictError, NotFoundError
from gateway.partner_keys import PARTNER_KEY_REVOKED, PartnerKey, PartnerKeyError
from gateway.store import partners_repo, sealed_rows
from gateway.store.partners_repo import StoredPartner, StoredPartnerKey
from gateway.store.unit_of_work import Connection


class PartnerNotFoundError(NotFoundError):
    """No partner with this id is stored (apply the catalog that defines it)."""

    code = "partner_not_found"


class PartnerKeyNotFoundError(NotFoundError):
    """The partner has no key with this kid."""

    code = "partner_key_not_found"


class PartnerKeyExistsError(ConflictError):
    """The partner already has a key with this kid (revoked ones included)."""

    code = "partner_key_exists"


class PartnerKeyAlreadyRevokedError(ConflictError):
    """The key is revoked already."""

    code = "partner_key_already_revoked"


class PartnerKeyNotActiveError(ConflictError):
    """Only an active key can be retired."""

    code = "partner_key_not_active"


class PartnerKeyNoSuccessorError(ConflictError):
    """Retiring this key would leave the partner no other usable key of the same use."""

    code = "partner_key_no_successor"


class PartnerKeyRetireDateError(ConflictError):
    """The retirement date is already past."""

    code = "partner_key_retire_date_past"


class PartnerKeyRecords(Protocol):
    """Partners and their key rows (`gateway.store.partners_repo`)."""

    async def get_partner(self, conn: Connection, id_: str) -> StoredPartner | None: ...

    async def keys_of(self, conn: Connection, partner_id: str) -> list[StoredPartnerKey]: ...

    async def add_key(self, conn: Connection, key: StoredPartnerKey, *, at: datetime) -> None: ...

    async def revoke_key(
        self, conn: Connection, partner_id: str, kid: str, reason: str
    ) -> bool: ...

    async def retire_key(
        self, conn: Connection, partner_id: str, kid: str, until: datetime
    ) -> bool: ...

    async def usable_keys(
        self, conn: Connection, partner_id: str, use: str, *, at: datetime
    ) -> list[StoredPartnerKey]: ...


class SealedEnvelopes(Protocol):
    """Undelivered envelopes by the key they are sealed to (`gateway.store.sealed_rows`)."""

    async def hold_sealed_to(
        self,
        conn: Connection,
        partner_id: str,
        kid: str,
        *,
        reason: str,
        at: datetime,
        actor: Actor,
    ) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class RevokedPartnerKey:
    """A key just revoked, how many encryption keys the partner has left to use, and the
    disclosures whose envelopes, sealed to it, are now held as failed."""

    partner: str
    kid: str
    use: str
    usable_enc_keys: int
    held: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RetiredPartnerKey:
    """A key retired in a routine rotation: envelopes sealed to it may go until `until`."""

    partner: str
    kid: str
    use: str
    until: datetime


def usable_at(row: StoredPartnerKey, when: datetime) -> bool:
    """Active, in its validity window, and still valid as a key (rules may have tightened)."""
    try:
        return PartnerKey.from_store(row).usable_at(when)
    except PartnerKeyError:
        return False


async def add_partner_key(
    store: StorePort,
    key: PartnerKey,
    *,
    actor: Actor,
    at: datetime,
    partners: PartnerKeyRecords = partners_repo,
    audit_entry: AuditTrail = chained_entry,
) -> StoredPartnerKey:
    """Register a partner's public key; without `not_before` it is valid from `at`."""
    row = key.to_store(registered_at=at)

    async def work(conn: Connection) -> None:
        await _partner(conn, partners, key.partner_id)
        if any(k.kid == key.kid for k in await partners.keys_of(conn, key.partner_id)):
            raise PartnerKeyExistsError(
                f"{key.partner_id} already has a key with kid {key.kid!r} (a revoked key is "
                "never registered again; give the new key a new kid)"
            )
        await partners.add_key(conn, row, at=at)
        targets = {"partner": key.partner_id, "kid": key.kid}
        details = {"use": row.use, "alg": row.alg, "not_after": _iso(row.not_after)}
        await audit_entry(conn, actor, "partner_key.added", at=at, targets=targets, details=details)

    await store.write(work)
    return row


async def revoke_partner_key(
    store: StorePort,
    partner_id: str,
    kid: str,
    reason: str,
    *,
    actor: Actor,
    at: datetime,
    partners: PartnerKeyRecords = partners_repo,
    envelopes: SealedEnvelopes = sealed_rows,
    audit_entry: AuditTrail = chained_entry,
) -> RevokedPartnerKey:
    """Revoke a key for good: never encrypted to, never accepted on a receipt again, and no
    envelope sealed to it ever sent (each is held as failed, for the source to resubmit)."""

    async def work(conn: Connection) -> RevokedPartnerKey:
        await _partner(conn, partners, partner_id)
        keys = {k.kid: k for k in await partners.keys_of(conn, partner_id)}
        if kid not in keys:
            raise PartnerKeyNotFoundError(f"{partner_id} has no key with kid {kid!r}")
        if keys[kid].status == "revoked":
            raise PartnerKeyAlreadyRevokedError(f"key {kid!r} of {partner_id} is already revoked")
        await partners.revoke_key(conn, partner_id, kid, reason)
        held: list[str] = []
        if keys[kid].use == "enc":
            held = await envelopes.hold_sealed_to(
                conn, partner_id, kid, reason=PARTNER_KEY_REVOKED, at=at, actor=actor
            )
        targets = {"partner": partner_id, "kid": kid}
        details = {"use": keys[kid].use, "reason": reason, "envelopes_held": len(held)}
        await audit_entry(
            conn, actor, "partner_key.revoked", at=at, targets=targets, details=details
        )
        left = await partners.usable_keys(conn, partner_id, "enc", at=at)
        return RevokedPartnerKey(partner_id, kid, keys[kid].use, len(left), tuple(held))

    return await store.write(work)


async def retire_partner_key(
    store: StorePort,
    partner_id: str,
    kid: str,
    until: datetime,
    *,
    actor: Actor,
    at: datetime,
    partners: PartnerKeyRecords = partners_repo,
    audit_entry: AuditTrail = chained_entry,
) -> RetiredPartnerKey:
    """Retire a key in a routine rotation: new envelopes use the partner's newer key at once;
    those already sealed to this one may still go (and its receipts verify) until `until`."""

    async def work(conn: Connection) -> RetiredPartnerKey:
        await _partner(conn, partners, partner_id)
        keys = {k.kid: k for k in await partners.keys_of(conn, partner_id)}
        if kid not in keys:
            raise PartnerKeyNotFoundError(f"{partner_id} has no key with kid {kid!r}")
        key = keys[kid]
        if key.status != "active":
            raise PartnerKeyNotActiveError(f"key {kid!r} of {partner_id} is {key.status}")
        if until <= at:
            raise PartnerKeyRetireDateError("the retirement date must be in the future")
        successors = [
            k for k in await partners.usable_keys(conn, partner_id, key.use, at=at) if k.kid != kid
        ]
        if not successors:
            raise PartnerKeyNoSuccessorError(
                f"{partner_id} has no other usable {key.use} key: add the new key first"
            )
        # Retiring never extends a key's life.
        last = min(until, key.not_after) if key.not_after is not None else until
        await partners.retire_key(conn, partner_id, kid, last)
        targets = {"partner": partner_id, "kid": kid}
        details = {"use": key.use, "until": last.isoformat()}
        await audit_entry(
            conn, actor, "partner_key.retired", at=at, targets=targets, details=details
        )
        return RetiredPartnerKey(partner_id, kid, key.use, last)

    return await store.write(work)


async def partner_keys(
    store: StorePort, partner_id: str, *, partners: PartnerKeyRecords = partners_repo
) -> list[StoredPartnerKey]:
    """Every key the partner registered, revoked and expired ones included, oldest first."""
    async with store.read() as conn:
        await _partner(conn, partners, partner_id)
        return await partners.keys_of(conn, partner_id)


async def _partner(conn: Connection, partners: PartnerKeyRecords, partner_id: str) -> StoredPartner:
    partner = await partners.get_partner(conn, partner_id)
    if partner is None:
        raise PartnerNotFoundError(f"no partner {partner_id!r} is stored")
    return partner


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
