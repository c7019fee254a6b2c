"""The tamper-evident audit log as the use cases see it: standalone entries, checkpoints, and
the sealer that chains what was staged (how appends stay fast: `gateway.store.audit_log`)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import structlog
from joserfc import jws
from joserfc.jwk import ECKey, OKPKey

from gateway.audit_entry import (
    CHECKPOINT_EVERY,
    CHECKPOINT_TYP,
    GENESIS,
    SEAL_BATCH,
    SYSTEM,
    Actor,
    ActorKind,
    CheckpointSigner,
    CheckpointVerifier,
    PendingEntry,
    canonical,
    checkpoint_payload,
    entry_hash,
    pending_row,
)
from gateway.store import audit_log as sql
from gateway.store.audit_log import append, append_many, seal
from gateway.store.database import Store
from gateway.store.unit_of_work import Connection

__all__ = [
    "CHECKPOINT_EVERY",
    "CHECKPOINT_TYP",
    "GENESIS",
    "SEAL_BATCH",
    "SYSTEM",
    "Actor",
    "ActorKind",
    "AuditSealer",
    "CheckpointSigner",
    "CheckpointVerifier",
    "JoseCheckpointSigner",
    "PendingEntry",
    "append",
    "append_many",
    "canonical",
    "checkpoint",
    "checkpoint_payload",
    "entry_hash",
    "pending_row",
    "record",
    "seal",
]

log = structlog.get_logger(__name__)


async def record(
    store: Store,
    actor: Actor,
    action: str,
    *,
    at: datetime,
    targets: Mapping[str, str] | None = None,
    details: Mapping[str, Any] | None = None,
    signer: CheckpointSigner | None = None,
) -> None:
    """Standalone append (admin actions): appended and chained before this returns."""
    # Built, and its details checked, before it joins a group commit: a bad entry fails here
    # rather than failing the batch it would have shared.
    entry = pending_row(actor, action, at=at, targets=targets, details=details)

    async def work(conn: Connection) -> None:
        await sql.append_rows(conn, [entry])
        await seal(conn, at=at, signer=signer)

    await store.write(work)


async def checkpoint(store: Store, signer: CheckpointSigner, *, at: datetime) -> int:
    """Seal what is pending and sign a checkpoint at the head now; returns its seq (0: empty)."""
    return await store.write(functools.partial(sql.checkpoint_head, signer=signer, at=at))


class AuditSealer:
    """Chains staged entries and signs the checkpoints due; run every `interval` seconds by
    the process's loops, looking with a read first so an idle store takes no write lock."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], datetime],
        signer: CheckpointSigner | None = None,
        interval: float = 0.1,
    ) -> None:
        self._store, self._clock, self._signer = store, clock, signer
        self.interval = interval

    async def seal_now(self) -> int:
        """Seal everything committed so far; returns how many entries were chained."""
        total = 0
        while True:
            work = functools.partial(seal, at=self._clock(), signer=self._signer)
            sealed = await self._store.write(work)
            total += sealed
            if sealed < SEAL_BATCH:
                return total

    async def seal_if_due(self) -> int:
        """Seal when entries are staged or a checkpoint is due (the periodic step)."""
        return await self.seal_now() if await self._due() else 0

    async def _due(self) -> bool:
        """Entries are staged, or a checkpoint has fallen due."""
        async with self._store.read() as conn:
            staged, _oldest = await sql.pending_summary(conn)
            if staged:
                return True
            if self._signer is None:
                return False
            head = await sql.read_head(conn)
            last = await sql.last_checkpoint(conn)
        return head.seq >= (last // CHECKPOINT_EVERY + 1) * CHECKPOINT_EVERY


class JoseCheckpointSigner:
    """A CheckpointSigner on a joserfc private key (ES256 by default, or EdDSA)."""

    def __init__(self, key: ECKey | OKPKey, kid: str, alg: str = "ES256") -> None:
        self._key, self._kid, self._alg = key, kid, alg

    @property
    def kid(self) -> str:
        """The signing key's id."""
        return self._kid

    def sign_compact(self, payload: bytes, *, typ: str | None = CHECKPOINT_TYP) -> str:
        """A compact JWS over `payload`, typed so it cannot pass for another token."""
        header = {"alg": self._alg, "kid": self._kid, **({"typ": typ} if typ else {})}
        return jws.serialize_compact(header, payload, self._key, algorithms=[self._alg])
