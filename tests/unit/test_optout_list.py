"""Opt-out list import against in-memory fakes: only blind indexes reach the store."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from gateway.application.optout_list import (
    OptOutListImport,
    import_optout_list,
    optout_list_status,
)
from gateway.protection import IdentifierKind
from gateway.store.unit_of_work import Connection
from tests.unit.admin_fakes import ADMIN, NOW, FakeAuditTrail, FakeStore

NUMBERS = ["9990000018", "9990000026", "9990000018"]


class FakeProtection:
    def blind_index(self, kind: IdentifierKind, value: str) -> str:
        return f"index({kind}:{value[::-1]})"


@dataclass
class FakeOptOuts:
    rows: tuple[str | None, set[str]] = (None, set())
    loaded_at: list[datetime] = field(default_factory=list)

    async def current_version(self, conn: Connection) -> tuple[str | None, int]:
        return self.rows[0], len(self.rows[1])

    async def replace_list(
        self, conn: Connection, nhs_indexes: Iterable[str], *, version: str, at: datetime
    ) -> int:
        self.rows = (version, set(nhs_indexes))
        self.loaded_at.append(at)
        return len(self.rows[1])


async def test_the_list_is_replaced_by_indexes_and_audited_by_counts() -> None:
    optouts, trail = FakeOptOuts(), FakeAuditTrail()
    store = FakeStore(optouts, trail)
    reports: list[int] = []

    async def load(numbers: list[str], version: str | None) -> OptOutListImport:
        return await import_optout_list(
            store,
            numbers,
            protection=FakeProtection(),
            list_version=version,
            invalid_lines=2,
            actor=ADMIN,
            at=NOW,
            progress=reports.append,
            optouts=optouts,
            audit_entry=trail,
        )

    await load(NUMBERS, "2026-10")
    loaded = await load(NUMBERS[:1] * 2500, None)
    assert optouts.rows == ("2026-11-25T10:00:00Z", {"index(nhs_number:8100000999)"})
    assert reports == [1000, 2000]
    assert loaded == OptOutListImport("2026-11-25T10:00:00Z", 1, 2, "2026-10", 2)
    status = await optout_list_status(store, optouts=optouts)
    assert (status.list_version, status.count) == ("2026-11-25T10:00:00Z", 1)
    entry = trail.rows[-1]
    assert (entry.action, entry.targets) == ("optouts.imported", {"list": "national_data_opt_out"})
    assert entry.details == {
        "list_version": "2026-11-25T10:00:00Z",
        "count": 1,
        "invalid_lines": 2,
        "previous_version": "2026-10",
        "previous_count": 2,
    }
    text = repr(trail.rows) + repr(optouts.rows)
    assert not any(number in text for number in NUMBERS)  # numbers never stored or audited
