"""The council's signing keys: generate, rotate, retire, each audited and mirrored.

Private keys stay in the keyring directory. After every change the public half of every key,
retired ones included, is mirrored into the store with its status, so any gateway process can
verify what any of them signed (audit checkpoints among it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from gateway.application.admin_ports import AuditTrail, StorePort, chained_entry
from gateway.audit import SYSTEM, Actor
from gateway.keys import CouncilKey
from gateway.store import partners_repo
from gateway.store.unit_of_work import Connection


class CouncilKeys(Protocol):
    """The keyring over GATEWAY_KEYS_DIR (`gateway.keys.CouncilKeyring`)."""

    def list(self) -> Sequence[CouncilKey]: ...

    def generate(self, alg: str, now: datetime) -> CouncilKey: ...

    def rotate(self, now: datetime, overlap: timedelta, alg: str | None = None) -> CouncilKey: ...

    def retire(self, kid: str, now: datetime) -> CouncilKey: ...


class CouncilKeyMirror(Protocol):
    """The store's copy of the council's public keys (`gateway.store.partners_repo`)."""

    async def mirror_council_key(
        self,
        conn: Connection,
        *,
        kid: str,
        alg: str,
        public_jwk: Mapping[str, Any],
        status: str,
        at: datetime,
        published_until: datetime | None = None,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class _KeyChange:
    """The audit entry of one change to the keyring."""

    action: str
    key: CouncilKey
    actor: Actor
    at: datetime
    details: Mapping[str, Any] = field(default_factory=dict)


async def generate_council_key(
    store: StorePort,
    keyring: CouncilKeys,
    alg: str,
    *,
    actor: Actor,
    at: datetime,
    mirror: CouncilKeyMirror = partners_repo,
    audit_entry: AuditTrail = chained_entry,
) -> CouncilKey:
    """A new signing key: active if none is, else pending (published ahead of a rotation)."""
    key = keyring.generate(alg, at)
    change = _KeyChange("council_key.generated", key, actor, at)
    await _mirror_and_audit(store, keyring, mirror, audit_entry, change)
    return key


async def rotate_council_key(
    store: StorePort,
    keyring: CouncilKeys,
    overlap: timedelta,
    *,
    actor: Actor,
    at: datetime,
    mirror: CouncilKeyMirror = partners_repo,
    audit_entry: AuditTrail = chained_entry,
) -> CouncilKey:
    """Make a new key active (the newest pending one, or a fresh one); the old is superseded.

    The old key stays published for `overlap`, so partners can still verify what it signed.
    """
    key = keyring.rotate(at, overlap)
    details = {"overlap_seconds": int(overlap.total_seconds())}
    change = _KeyChange("council_key.rotated", key, actor, at, details)
    await _mirror_and_audit(store, keyring, mirror, audit_entry, change)
    return key


async def retire_council_key(
    store: StorePort,
    keyring: CouncilKeys,
    kid: str,
    *,
    actor: Actor,
    at: datetime,
    mirror: CouncilKeyMirror = partners_repo,
    audit_entry: AuditTrail = chained_entry,
) -> CouncilKey:
    """Withdraw a superseded or pending key for good: unpublished, private key file deleted."""
    key = keyring.retire(kid, at)
    change = _KeyChange("council_key.retired", key, actor, at)
    await _mirror_and_audit(store, keyring, mirror, audit_entry, change)
    return key


async def ensure_signing_key(
    store: StorePort,
    keyring: CouncilKeys,
    alg: str,
    *,
    at: datetime,
    actor: Actor = SYSTEM,
    mirror: CouncilKeyMirror = partners_repo,
    audit_entry: AuditTrail = chained_entry,
) -> None:
    """At start-up: generate a key when none is active; always bring the mirror up to date."""
    change = None
    if not any(key.status == "active" for key in keyring.list()):
        change = _KeyChange("council_key.generated", keyring.generate(alg, at), actor, at)
    await _mirror_and_audit(store, keyring, mirror, audit_entry, change)


async def _mirror_and_audit(
    store: StorePort,
    keyring: CouncilKeys,
    mirror: CouncilKeyMirror,
    audit_entry: AuditTrail,
    change: _KeyChange | None,
) -> None:
    """Mirror every key's public half, and audit the change, in one unit of work."""
    keys = keyring.list()  # read before the work, which may run twice

    async def work(conn: Connection) -> None:
        for each in keys:
            await mirror.mirror_council_key(
                conn,
                kid=each.kid,
                alg=each.alg,
                public_jwk=each.public_jwk,
                status=each.status,
                at=each.created_at,
                published_until=each.published_until,
            )
        if change is not None:
            key = change.key
            await audit_entry(
                conn,
                change.actor,
                change.action,
                at=change.at,
                targets={"kid": key.kid},
                details={"alg": key.alg, "status": key.status, **change.details},
            )

    await store.write(work)
