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

import contextlib
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

from sqlalchemy.engine import Engine

from gateway import audit, worker_link
from gateway.keys import CouncilKeyring, KeyringCheckpointSigner
from gateway.store import disclosures
from gateway.store.engine import create_sqlite_writer_engine

SEAL_INTERVAL_SECONDS = 0.1  # as the API process's sealer
WORKER_TIMEOUT_SECONDS = 5.0  # a commit of a full batch takes tens of ms; this late is wedged
MAX_BATCH = 256  # disclosures per transaction


def _work(connection: Connection, url: str, keys_dir: str) -> None:
    """The child: commit what has arrived in one transaction, then answer each item (ok?).

    Between batches, at most every `SEAL_INTERVAL_SECONDS`, it also seals the audit chain
    (`audit.seal_sync`: entries other writers staged, and the checkpoints due), so that the
    API process's sealer, finding nothing to do, need not take the write lock from a thread
    that shares the event loop's GIL (a lock held that way made this child wait 30-55 ms).
    """
    engine = create_sqlite_writer_engine(url)
    signer = KeyringCheckpointSigner(CouncilKeyring(Path(keys_dir)), _utc_now)
    worker_link.say_ready(connection)
    next_seal = time.monotonic()
    try:
        while True:
            try:
                if connection.poll(max(next_seal - time.monotonic(), 0)):
                    items: list[disclosures.Accepted] = worker_link.receive(connection)
                    while len(items) < MAX_BATCH and connection.poll():  # arrived meanwhile
                        items.extend(worker_link.receive(connection))
                    worker_link.answer(connection, _commit(engine, items))
            except EOFError:
                return  # the service stopped (or died): nothing more to record
            if time.monotonic() >= next_seal:
                _seal(engine, signer)
                next_seal = time.monotonic() + SEAL_INTERVAL_SECONDS
    finally:
        engine.dispose()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _seal(engine: Engine, signer: KeyringCheckpointSigner) -> None:
    """Chain what other writers staged and sign the checkpoints due; the API's sealer is the
    fallback, so a failure here is left to it."""
    with contextlib.suppress(Exception):
        while True:
            with engine.begin() as conn:
                if audit.seal_sync(conn, at=_utc_now(), signer=signer) < audit.SEAL_BATCH:
                    return


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

    def __init__(self, url: str, keys_dir: Path) -> None:
        self._pool: worker_link.WorkerPool[disclosures.Accepted, bool] = worker_link.WorkerPool(
            _work, (url, str(keys_dir)), name="gatehouse-writer", timeout=WORKER_TIMEOUT_SECONDS
        )

    @property
    def ready(self) -> bool:
        """The child has started and answers."""
        return self._pool.ready

    @property
    def usable(self) -> bool:
        """The child is there to take work (and seals the audit chain meanwhile)."""
        return self._pool.usable

    async def start(self) -> None:
        """Spawn the child and wait until it can write."""
        await self._pool.start()

    async def record(self, item: disclosures.Accepted) -> bool:
        """Committed by the child (True), or not recorded by it, as far as it could tell."""
        return await self._pool.submit(item) is True

    async def close(self) -> None:
        """Stop the child once it has answered what it has (callers of the rest get False)."""
        await self._pool.close()
