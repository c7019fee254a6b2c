"""Group commit of accepted disclosures: a burst is recorded table by table in one transaction."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from gateway.store import disclosures
from gateway.store.database import Store
from gateway.write_pool import WritePool


class GroupCommit:
    """The pipeline's writer for allowed disclosures; `record` returns once committed.

    Through the store's group commit, or, when `gateway serve` has started one, through the
    writer process (`write_pool`), falling back to the store for anything it does not commit.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self.pool: WritePool | None = None

    async def record(self, item: disclosures.Accepted) -> None:
        """Queue one disclosure for the next commit and wait for that commit."""
        if self.pool is not None and await self.pool.record(item):
            return
        try:
            await self._store.submit_sync(disclosures.record_accepted_setwise, item)
        except IntegrityError:
            # The writer process may have committed it and then gone silent (killed, wedged):
            # then it is recorded, once. Anything else is a real error.
            if self.pool is None or not await self._recorded(item.new.id):
                raise

    async def _recorded(self, disclosure_id: str) -> bool:
        async with self._store.read() as conn:
            return await disclosures.get(conn, disclosure_id) is not None

    async def close(self) -> None:
        """Nothing of its own to close: the store's writer finishes queued work on close."""
