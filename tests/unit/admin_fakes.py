"""In-memory stand-ins for the admin use cases' ports: the store, the audit trail, and tables.

`FakeStore.write` runs the work as the real store does, as one unit: when the work raises, every
fake table it was given is put back as it was, like a rolled-back transaction.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, cast

from gateway.audit import Actor, ActorKind
from gateway.store.unit_of_work import Connection

R = TypeVar("R")
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
ADMIN = Actor(ActorKind.ADMIN, "ig.officer")
CONN = cast(Connection, object())  # the fakes never look at the connection


class Table(Protocol):
    """A fake with state a failed unit of work must leave untouched."""

    rows: Any


class FakeStore:
    """Runs each unit of work at once; rolls the given tables back when it raises."""

    def __init__(self, *tables: Table) -> None:
        self.tables = tables
        self.commits = 0

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Connection]:
        yield CONN

    async def write(self, work: Callable[[Connection], Awaitable[R]]) -> R:
        before = [copy.deepcopy(table.rows) for table in self.tables]
        try:
            result = await work(CONN)
        except BaseException:
            for table, rows in zip(self.tables, before, strict=True):
                table.rows = rows
            raise
        self.commits += 1
        return result


@dataclass(frozen=True)
class Entry:
    """One audit entry as the use case appended it."""

    actor: Actor
    action: str
    at: datetime
    targets: Mapping[str, str]
    details: Mapping[str, Any]


@dataclass
class FakeAuditTrail:
    """Collects the entries appended in committed units of work."""

    rows: list[Entry] = field(default_factory=list)

    async def __call__(
        self,
        conn: Connection,
        actor: Actor,
        action: str,
        *,
        at: datetime,
        targets: Mapping[str, str],
        details: Mapping[str, Any] | None = None,
    ) -> None:
        assert conn is CONN
        self.rows.append(Entry(actor, action, at, dict(targets), dict(details or {})))

    @property
    def actions(self) -> list[str]:
        return [entry.action for entry in self.rows]
