"""A caller's view of one disclosure: status, fields, timeline and receipt (names, no values)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import NotFoundError
from gateway.store import disclosures, receipt_rows
from gateway.store.database import Store
from gateway.store.disclosure_model import Disclosure, DisclosureEvent
from gateway.store.receipt_rows import StoredReceipt


@dataclass(frozen=True, slots=True)
class DisclosureReport:
    """What GET /v1/disclosures/{id} shows its client."""

    disclosure: Disclosure
    events: tuple[DisclosureEvent, ...]
    receipt: StoredReceipt | None


async def disclosure_report(store: Store, disclosure_id: str, client: str) -> DisclosureReport:
    """One disclosure as its client may see it; NotFoundError for anyone else's."""
    async with store.read() as conn:
        found = await disclosures.get_for_client(conn, disclosure_id, client)
        if found is None:
            raise NotFoundError("no such disclosure")
        events = await disclosures.timeline(conn, disclosure_id)
        receipt = await receipt_rows.for_disclosure(conn, disclosure_id)
    return DisclosureReport(found, tuple(events), receipt)
