"""Group commit of accepted disclosures: a burst is recorded table by table in one transaction."""

from __future__ import annotations

from gateway.store import disclosures
from gateway.store.database import Store


class GroupCommit:
    """The pipeline's writer for allowed disclosures; `record` returns once committed."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def record(self, item: disclosures.Accepted) -> None:
        """Queue one disclosure for the next commit and wait for that commit."""
        await self._store.submit_sync(disclosures.record_accepted_setwise, item)

    async def close(self) -> None:
        """Nothing of its own to close: the store's writer finishes queued work on close."""
