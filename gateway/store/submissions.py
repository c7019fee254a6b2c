"""What submitting a disclosure reads and writes: the opt-out list, idempotency keys, and the
disclosure itself (accepted, refused or held), each in one unit of work."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit_entry import Actor
from gateway.store import disclosures, idempotency, optouts
from gateway.store.database import Store
from gateway.store.disclosure_model import AtRestKeys, NewDisclosure
from gateway.store.group_commit import SetWise


@dataclass(frozen=True, slots=True)
class PolicyRefusal:
    """A disclosure refused by policy (no envelope exists)."""

    new: NewDisclosure
    actor: Actor
    at: datetime


@dataclass(frozen=True, slots=True)
class Hold:
    """A disclosure held for approval; `request` is sealed under the data key before storing."""

    new: NewDisclosure
    request: bytes
    actor: Actor
    at: datetime


Write = disclosures.AcceptedDisclosure | PolicyRefusal | Hold


@dataclass(frozen=True, slots=True)
class KeptReply:
    """The reply to keep beside an Idempotency-Key, in the disclosure's own unit of work."""

    client: str
    key: str
    request_hash: str
    reply: Mapping[str, Any]


class _KeyTakenError(Exception):
    """A concurrent request with the same Idempotency-Key committed first."""


class SubmissionLedger:
    """The store side of the submit use case."""

    def __init__(self, store: Store, protection: AtRestKeys) -> None:
        self._store, self._protection = store, protection

    async def opted_out(self, nhs_index: str) -> bool:
        """The subject's NHS number is on the national data opt-out list."""
        async with self._store.read() as conn:
            return await optouts.is_opted_out(conn, nhs_index)

    async def prior(self, client: str, key: str, request_hash: str) -> Mapping[str, Any] | None:
        """The reply kept for this key; raises IdempotencyKeyReusedError if the body differs."""
        async with self._store.read() as conn:
            found = await idempotency.lookup(conn, client, key, request_hash)
        return None if found is None else found.response

    async def record(self, write: Write, keep: KeptReply | None) -> Mapping[str, Any] | None:
        """Write it (and the key's reply): None, or the reply a concurrent request kept first."""
        if keep is None and isinstance(write, disclosures.AcceptedDisclosure):
            # The hot path, written set-wise with whatever else is being accepted meanwhile.
            await self._store.write(SetWise(disclosures.record_accepted_setwise, write))
            return None

        async def work(conn: AsyncConnection) -> None:
            await self._write(conn, write)
            if keep is not None and not await idempotency.remember(
                conn,
                keep.client,
                keep.key,
                request_hash=keep.request_hash,
                response=keep.reply,
                at=write.at,
            ):
                raise _KeyTakenError

        try:
            await self._store.write(work)
        except _KeyTakenError:
            assert keep is not None
            earlier = await self.prior(keep.client, keep.key, keep.request_hash)
            if earlier is None:
                raise RuntimeError("an Idempotency-Key was taken but cannot be read") from None
            return earlier
        return None

    async def _write(self, conn: AsyncConnection, write: Write) -> None:
        if isinstance(write, disclosures.AcceptedDisclosure):
            await disclosures.record_accepted_many(conn, [write])
        elif isinstance(write, PolicyRefusal):
            await disclosures.record_denied(conn, write.new, actor=write.actor, at=write.at)
        else:
            await disclosures.record_held(
                conn,
                write.new,
                request=write.request,
                protection=self._protection,
                actor=write.actor,
                at=write.at,
            )
