"""Group commit of accepted disclosures: a burst is recorded table by table in one transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store import disclosures
from gateway.store.batching import TransactionBatcher
from gateway.store.database import Store


async def _record(conn: AsyncConnection, items: Sequence[disclosures.Accepted]) -> list[None]:
    await disclosures.record_accepted_many(conn, items)
    return [None] * len(items)


class GroupCommit(TransactionBatcher[disclosures.Accepted, None]):
    """The pipeline's writer for allowed disclosures; `record` returns once committed."""

    def __init__(self, store: Store, *, max_batch: int = 64) -> None:
        super().__init__(store, _record, max_batch=max_batch)

    async def record(self, item: disclosures.Accepted) -> None:
        """Queue one disclosure for the next commit and wait for that commit."""
        await self.submit(item)
