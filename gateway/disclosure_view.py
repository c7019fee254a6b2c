"""A caller's view of one disclosure: status, fields, timeline and receipt (names, no values)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.errors import NotFoundError
from gateway.store import disclosures, receipts
from gateway.store.database import Store
from gateway.store.disclosure_model import Disclosure, Event
from gateway.store.receipts import StoredReceipt


@dataclass(frozen=True, slots=True)
class DisclosureReport:
    """What GET /v1/disclosures/{id} shows its client."""

    disclosure: Disclosure
    events: tuple[Event, ...]
    receipt: StoredReceipt | None


async def disclosure_report(store: Store, disclosure_id: str, client: str) -> DisclosureReport:
    """One disclosure as its client may see it; NotFoundError for anyone else's."""
    async with store.read() as conn:
        found = await disclosures.get_for_client(conn, disclosure_id, client)
        if found is None:
            raise NotFoundError("no such disclosure")
        events = await disclosures.timeline(conn, disclosure_id)
        receipt = await receipts.for_disclosure(conn, disclosure_id)
    return DisclosureReport(found, tuple(events), receipt)
