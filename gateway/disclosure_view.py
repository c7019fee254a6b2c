"""The caller's view of one disclosure: status, fields, timeline and receipt (names, no values)."""

from __future__ import annotations

from gateway.errors import NotFoundError
from gateway.http.schemas import AgreementRef, DisclosureView, Event, ReceiptView
from gateway.store import disclosures, receipts
from gateway.store.database import Store


async def disclosure_view(store: Store, disclosure_id: str, client: str) -> DisclosureView:
    """Build the contract's GET body; a client sees only its own disclosures."""
    async with store.read() as conn:
        found = await disclosures.get_for_client(conn, disclosure_id, client)
        if found is None:
            raise NotFoundError("no such disclosure")
        events = await disclosures.timeline(conn, disclosure_id)
        receipt = await receipts.for_disclosure(conn, disclosure_id)
    return DisclosureView(
        id=found.id,
        status=found.status.value,
        agreement=AgreementRef(id=found.agreement_id, version=found.agreement_version),
        partner=found.partner_id,
        purpose=found.purpose,
        fields_sent=list(found.fields_sent),
        fields_removed=list(found.fields_removed),
        reasons=list(found.decision_reasons),
        events=[Event(at=e.at, type=e.type, **dict(e.detail)) for e in events],
        receipt=(
            ReceiptView(
                id=receipt.receipt_id,
                status="received" if receipt.status == "received" else "rejected",
                reason=receipt.reason,
                received_at=receipt.received_at,
                kid=receipt.verified_kid,
            )
            if receipt is not None
            else None
        ),
    )
