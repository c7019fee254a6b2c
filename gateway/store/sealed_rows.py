"""Envelopes sealed to one partner key and not yet delivered: held as failed when it is revoked.

Nothing is sealed again (the plaintext is not kept): the source system resubmits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway import audit_entry
from gateway.store import delivery_records
from gateway.store.disclosure_model import Status
from gateway.store.tables import disclosures, outbox

KEY_REVOKED_EVENT = "envelope_key_revoked"
"""On a disclosure already `failed`: its envelope can no longer be replayed."""


async def undelivered_sealed_to(
    conn: AsyncConnection, partner_id: str, kid: str
) -> list[tuple[str, Status]]:
    """(id, status) of the partner's `queued` and `failed` disclosures whose envelope the outbox
    still holds, sealed to this key id."""
    query = (
        select(disclosures.c.id, disclosures.c.status, disclosures.c.key_ids)
        .join(outbox, outbox.c.disclosure_id == disclosures.c.id)
        .where(
            disclosures.c.partner_id == partner_id,
            disclosures.c.status.in_([str(Status.QUEUED), str(Status.FAILED)]),
        )
        .order_by(disclosures.c.id)
    )
    return [
        (row.id, Status(row.status))
        for row in await conn.execute(query)
        if kid in (row.key_ids or ())
    ]


async def hold_sealed_to(
    conn: AsyncConnection,
    partner_id: str,
    kid: str,
    *,
    reason: str,
    at: datetime,
    actor: audit_entry.Actor,
) -> list[str]:
    """Every undelivered envelope sealed to this key: `failed` with `reason`, not replayable.

    A queued one moves to `failed`; one already failed gets an event saying why it can no
    longer be replayed. Returns the disclosure ids held.
    """
    held = []
    for id_, status in await undelivered_sealed_to(conn, partner_id, kid):
        if status is Status.QUEUED:
            if await delivery_records.fail(conn, id_, reason=reason, at=at, actor=actor):
                held.append(id_)
        else:
            await delivery_records.add_event(
                conn, id_, KEY_REVOKED_EVENT, at=at, detail={"reason": reason}, actor=actor
            )
            held.append(id_)
    return held
