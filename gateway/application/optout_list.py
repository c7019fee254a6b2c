"""The national data opt-out list: replaced wholesale, held only as keyed hashes.

An NHS number never reaches the store: each is replaced by its blind index (an HMAC under the
gateway's own key) first, and the audit entry counts numbers without naming any.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Protocol

from gateway.application.admin_ports import AuditTrail, StorePort, chained_entry
from gateway.audit import Actor
from gateway.protection import IdentifierKind
from gateway.store import optouts as optouts_table
from gateway.store.unit_of_work import Connection

PROGRESS_EVERY = 1000  # numbers hashed between progress reports


class BlindIndexer(Protocol):
    """Keyed hashes of subject identifiers (`gateway.protection.Protection`)."""

    def blind_index(self, kind: IdentifierKind, value: str) -> str: ...


class OptOutRecords(Protocol):
    """The stored list (`gateway.store.optouts`)."""

    async def current_version(self, conn: Connection) -> tuple[str | None, int]: ...

    async def replace_list(
        self, conn: Connection, nhs_indexes: Iterable[str], *, version: str, at: datetime
    ) -> int: ...


@dataclass(frozen=True, slots=True)
class OptOutListStatus:
    """Which list is loaded, and how many NHS numbers it holds."""

    list_version: str | None
    count: int


@dataclass(frozen=True, slots=True)
class OptOutListImport:
    """The list now loaded, the one it replaced, and how many lines of the file were skipped."""

    list_version: str
    count: int
    invalid_lines: int
    previous_version: str | None
    previous_count: int


async def import_optout_list(
    store: StorePort,
    nhs_numbers: Sequence[str],
    *,
    protection: BlindIndexer,
    list_version: str | None,
    invalid_lines: int,
    actor: Actor,
    at: datetime,
    progress: Callable[[int], None] | None = None,
    optouts: OptOutRecords = optouts_table,
    audit_entry: AuditTrail = chained_entry,
) -> OptOutListImport:
    """Replace the list with these (already validated) NHS numbers, stored as blind indexes.

    `list_version` defaults to the import time; `progress` hears how many are hashed so far.
    """
    indexes = []
    for done, number in enumerate(nhs_numbers, start=1):
        indexes.append(protection.blind_index("nhs_number", number))
        if progress is not None and done % PROGRESS_EVERY == 0:
            progress(done)
    version = list_version or at.strftime("%Y-%m-%dT%H:%M:%SZ")

    async def work(conn: Connection) -> OptOutListImport:
        previous, previous_count = await optouts.current_version(conn)
        count = await optouts.replace_list(conn, indexes, version=version, at=at)
        loaded = OptOutListImport(version, count, invalid_lines, previous, previous_count)
        targets = {"list": "national_data_opt_out"}
        await audit_entry(
            conn, actor, "optouts.imported", at=at, targets=targets, details=asdict(loaded)
        )
        return loaded

    return await store.write(work)


async def optout_list_status(
    store: StorePort, *, optouts: OptOutRecords = optouts_table
) -> OptOutListStatus:
    """The loaded list's version and size."""
    async with store.read() as conn:
        return OptOutListStatus(*await optouts.current_version(conn))
