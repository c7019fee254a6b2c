"""A cancelled SQLite transaction must not leave the database's write lock held."""

from __future__ import annotations

import asyncio
import sqlite3

from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.integration.store_support import open_store


def _can_write(url: str) -> bool:
    """Whether another connection (as another process would) gets the write lock within 5 s."""
    other = sqlite3.connect(str(make_url(url).database), timeout=5, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("COMMIT")
    except sqlite3.OperationalError:
        return False
    finally:
        other.close()
    return True


async def test_a_cancelled_write_transaction_lets_go_of_the_write_lock(sqlite_url: str) -> None:
    """Cancelled at every point of a transaction (BEGIN included), as a shutdown would."""
    async with open_store(sqlite_url) as store:
        for attempt in range(40):

            async def work() -> None:
                # The store's own transaction, held open here so this test can cancel it mid-way.
                async with store._transaction() as conn:
                    for _ in range(50):
                        await conn.execute(text("SELECT 1"))

            task = asyncio.ensure_future(work())
            await asyncio.sleep(0.0005 * (attempt % 10))
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            del task
            # In a thread, so the loop can finish the cancelled transaction's clean-up meanwhile.
            released = await asyncio.to_thread(_can_write, sqlite_url)
            assert released, f"write lock still held after cancel {attempt}"
