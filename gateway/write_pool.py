"""Recording accepted disclosures in a worker process, so the API process's GIL is the loop's own.

On SQLite the API process wrote accepted disclosures on a thread of its own (`sqlite_writer`).
SQLite's work there runs without the GIL, but SQLAlchemy's does not: at 1,000 requests a second
that thread held the GIL for about a fifth of the time, in many short turns, and every turn it
waited for was a turn the event loop had to give up. Measured then: with the writing left out
altogether the open loop's p99 fell from ~65 ms to 12-18 ms. A child process has a GIL of its
own: the loop sends it each accepted disclosure (its rows' data and the sealed envelope) and
awaits its answer; the child commits whatever has arrived in one transaction (group commit) and
answers only then, so an answer still means "durably recorded".

Everything else the process writes still goes through the store (`Store.transaction`,
`Store.submit_sync`); the two processes share SQLite's one write lock, each write transaction
beginning IMMEDIATE. Audit entries are chained in the child's transaction, as on the writer
thread. If the child fails an item, dies, or is silent past `WORKER_TIMEOUT_SECONDS`, the caller
records the item through the store instead (`GroupCommit`), which also tells a real error from
an item the child did commit before going silent.
"""

from __future__ import annotations

from multiprocessing.connection import Connection

from sqlalchemy.engine import Engine

from gateway import worker_link
from gateway.store import disclosures
from gateway.store.engine import create_sqlite_writer_engine

WORKER_TIMEOUT_SECONDS = 5.0  # a commit of a full batch takes tens of ms; this late is wedged
MAX_BATCH = 256  # disclosures per transaction


def _work(connection: Connection, url: str) -> None:
    """The child: commit what has arrived in one transaction, then answer each item (ok?)."""
    engine = create_sqlite_writer_engine(url)
    worker_link.say_ready(connection)
    try:
        while True:
            try:
                items: list[disclosures.Accepted] = worker_link.receive(connection)
                while len(items) < MAX_BATCH and connection.poll():  # arrived meanwhile: join in
                    items.extend(worker_link.receive(connection))
            except EOFError:
                return  # the service stopped (or died): nothing more to record
            worker_link.answer(connection, _commit(engine, items))
    finally:
        engine.dispose()


def _commit(engine: Engine, items: list[disclosures.Accepted]) -> list[bool]:
    """Commit all in one transaction; if that fails, each alone, so a bad item fails alone."""
    try:
        with engine.begin() as conn:
            disclosures.record_accepted_setwise(conn, items)
    except Exception:  # the caller records it again through the store, for the real error
        if len(items) == 1:
            return [False]
        return [ok for item in items for ok in _commit(engine, [item])]
    return [True] * len(items)


class WritePool:
    """`record(item)`: True once the child has committed it; False: record it yourself."""

    def __init__(self, url: str) -> None:
        self._pool: worker_link.WorkerPool[disclosures.Accepted, bool] = worker_link.WorkerPool(
            _work, (url,), name="gatehouse-writer", timeout=WORKER_TIMEOUT_SECONDS
        )

    @property
    def ready(self) -> bool:
        """The child has started and answers."""
        return self._pool.ready

    async def start(self) -> None:
        """Spawn the child and wait until it can write."""
        await self._pool.start()

    async def record(self, item: disclosures.Accepted) -> bool:
        """Committed by the child (True), or not recorded by it, as far as it could tell."""
        return await self._pool.submit(item) is True

    async def close(self) -> None:
        """Stop the child once it has answered what it has (callers of the rest get False)."""
        await self._pool.close()
