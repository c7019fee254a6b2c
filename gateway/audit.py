"""The tamper-evident audit log as the use cases see it: standalone entries, checkpoints, and
the sealer that chains what was staged (how appends stay fast: `gateway.store.audit_log`)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import structlog

from gateway.audit_anchor import CheckpointAnchor
from gateway.audit_entry import (
    CHECKPOINT_EVERY,
    CHECKPOINT_MAX_AGE,
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
from gateway.store.group_commit import SetWise
from gateway.store.unit_of_work import Connection

__all__ = [
    "CHECKPOINT_EVERY",
    "CHECKPOINT_MAX_AGE",
    "CHECKPOINT_TYP",
    "GENESIS",
    "SEAL_BATCH",
    "SYSTEM",
    "Actor",
    "ActorKind",
    "AuditSealer",
    "CheckpointSigner",
    "CheckpointVerifier",
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


async def checkpoint(
    store: Store,
    signer: CheckpointSigner,
    *,
    at: datetime,
    anchor: CheckpointAnchor | None = None,
) -> int:
    """Seal what is pending and sign a checkpoint at the head now; returns its seq (0: empty).

    With an anchor, the checkpoint (and any the anchor lacks) is appended to it afterwards.
    """
    seq = await store.write(functools.partial(sql.checkpoint_head, signer=signer, at=at))
    if anchor is not None:
        await anchor.catch_up(store)
    return seq


class AuditSealer:
    """Chains staged entries and signs the checkpoints due; run every `interval` seconds by
    the process's loops, looking with a read first so an idle store takes no write lock.

    With an `anchor`, each checkpoint is appended there once it has committed (and at start,
    any the anchor missed when a process stopped in between).
    """

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], datetime],
        signer: CheckpointSigner | None = None,
        anchor: CheckpointAnchor | None = None,
        interval: float = 0.1,
    ) -> None:
        self._store, self._clock = store, clock
        self._signer = None if signer is None else _Noting(signer, self._note_signed)
        self._anchor, self._anchor_due = anchor, anchor is not None
        self.interval = interval

    def _note_signed(self) -> None:
        self._anchor_due = self._anchor is not None

    async def seal_now(self) -> int:
        """Seal everything committed so far; returns how many entries were chained."""
        total = 0
        while True:
            request = sql.SealRequest(self._clock(), self._signer)
            sealed = await self._store.write(SetWise(sql.seal_each, request))
            total += sealed
            if sealed < SEAL_BATCH:
                break
        if self._anchor is not None and self._anchor_due:
            self._anchor_due = False
            try:
                await self._anchor.catch_up(self._store)
            except BaseException:
                self._anchor_due = True  # tried again on the next step
                raise
        return total

    async def seal_if_due(self) -> int:
        """Seal when entries are staged or a checkpoint is due (the periodic step)."""
        return await self.seal_now() if await self._due() else 0

    async def _due(self) -> bool:
        """Entries are staged, a checkpoint has fallen due, or the anchor is behind."""
        if self._anchor_due:
            return True
        async with self._store.read() as conn:
            staged, _oldest = await sql.pending_summary(conn)
            if staged:
                return True
            if self._signer is None:
                return False
            head = await sql.read_head(conn)
            last = await sql.last_checkpoint(conn)
            oldest = await sql.oldest_unchecked_at(conn)
        if oldest is not None and oldest <= self._clock() - CHECKPOINT_MAX_AGE:
            return True
        return head.seq >= (last // CHECKPOINT_EVERY + 1) * CHECKPOINT_EVERY


class _Noting:
    """A CheckpointSigner that tells the sealer it signed, so the anchor is brought up to date."""

    def __init__(self, signer: CheckpointSigner, signed: Callable[[], None]) -> None:
        self._signer, self._signed = signer, signed

    @property
    def kid(self) -> str:
        """The wrapped signer's key id."""
        return self._signer.kid

    def sign_compact(self, payload: bytes, *, typ: str | None = CHECKPOINT_TYP) -> str:
        """Sign, and note it."""
        token = self._signer.sign_compact(payload, typ=typ)
        self._signed()
        return token
