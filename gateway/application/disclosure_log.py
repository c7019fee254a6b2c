"""The disclosure log per agreement and per partner, streamed for any number of disclosures.

What an auditor or the partner's DPO asks for: which disclosures went, when, under which
agreement version, for what purpose, with which field names, approved by whom. Never a record
value or a subject identifier (the store holds neither in plain form).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from gateway.application.admin_ports import StorePort
from gateway.store import disclosure_listing as log_store
from gateway.store.disclosure_listing import Cursor, LogFilter, LoggedDisclosure
from gateway.store.unit_of_work import Connection

PAGE = 1000
COLUMNS = (
    "id",
    "date",
    "status_at",
    "agreement",
    "agreement_version",
    "purpose",
    "partner",
    "lawful_basis",
    "status",
    "fields_sent",
    "approver",
    "retain_until",
)


class DisclosureLogRows(Protocol):
    """Disclosures page by page (`gateway.store.disclosure_listing`)."""

    async def page(
        self, conn: Connection, chosen: LogFilter, *, after: Cursor | None, limit: int
    ) -> list[LoggedDisclosure]: ...


@dataclass(frozen=True, slots=True)
class DisclosureLogQuery:
    """Which disclosures to list; dates are whole UTC days, both ends inclusive."""

    agreement: str | None = None
    partner: str | None = None
    status: str | None = None
    from_date: date | None = None
    to_date: date | None = None

    def as_filter(self) -> LogFilter:
        """The store's filter: `to_date` takes in the whole of that day."""
        return LogFilter(
            agreement=self.agreement,
            partner=self.partner,
            status=self.status,
            since=day_start(self.from_date) if self.from_date else None,
            before=day_start(self.to_date + timedelta(days=1)) if self.to_date else None,
        )


def day_start(day: date) -> datetime:
    """Midnight UTC at the start of `day`."""
    return datetime.combine(day, time(), tzinfo=UTC)


def log_line(logged: LoggedDisclosure) -> dict[str, Any]:
    """One line of the log, in COLUMNS order, JSON-ready."""
    return {
        "id": logged.id,
        "date": logged.created_at.isoformat(),
        "status_at": logged.updated_at.isoformat(),
        "agreement": logged.agreement_id,
        "agreement_version": logged.agreement_version,
        "purpose": logged.purpose,
        "partner": logged.partner_id,
        "lawful_basis": logged.lawful_basis,
        "status": logged.status,
        "fields_sent": list(logged.fields_sent),
        "approver": logged.approver,
        "retain_until": logged.retain_until.isoformat(),
    }


async def read_disclosure_log(
    store: StorePort,
    query: DisclosureLogQuery,
    *,
    rows: DisclosureLogRows = log_store,
    page_size: int = PAGE,
) -> AsyncIterator[LoggedDisclosure]:
    """Every matching disclosure, oldest first, one page in memory at a time.

    Each page is its own short read, so a long export never holds a read transaction open.
    """
    chosen = query.as_filter()
    after: Cursor | None = None
    while True:
        async with store.read() as conn:
            found = await rows.page(conn, chosen, after=after, limit=page_size)
        for logged in found:
            yield logged
        if len(found) < page_size:
            return
        after = (found[-1].created_at, found[-1].id)
