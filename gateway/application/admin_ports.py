"""What the admin use cases share: the store they write through, and the audit trail.

Each use case writes one unit of work, `await store.write(work)`, where `work(conn)` checks its
rules on the connection and writes its rows and audit entries there. The store may run `work`
twice (alone, if the batch it joined failed), so it touches nothing but the connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol, TypeVar

from gateway import audit
from gateway.audit import Actor
from gateway.store.unit_of_work import Connection

R = TypeVar("R")


class StorePort(Protocol):
    """Reads, and one write route for units of work (the Store; a fake in unit tests)."""

    def read(self) -> AbstractAsyncContextManager[Connection]:
        """A connection for reads only."""
        ...

    async def write(self, work: Callable[[Connection], Awaitable[R]]) -> R:
        """Run `work` in a transaction; returns its result once committed."""
        ...


class AuditTrail(Protocol):
    """Appends one audit entry in the unit of work's transaction."""

    async def __call__(
        self,
        conn: Connection,
        actor: Actor,
        action: str,
        *,
        at: datetime,
        targets: Mapping[str, str],
        details: Mapping[str, Any] | None = None,
    ) -> None: ...


async def chained_entry(
    conn: Connection,
    actor: Actor,
    action: str,
    *,
    at: datetime,
    targets: Mapping[str, str],
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append the entry and chain it in the same transaction.

    An administrator's change is then in the hash chain when the command returns, whether or
    not a gateway process is running to seal it.
    """
    await audit.append(conn, actor, action, at=at, targets=targets, details=details)
    await audit.seal(conn, at=at)
