"""The S/MIME message an email disclosure goes as, made once and kept beside its envelope.

A CMS EnvelopedData is new bytes every time it is made (a random content key), and a receipt
digests those bytes, so the worker makes it once per disclosure and every attempt sends the
same, while the certificate it was made for stays usable. It is ciphertext for the partner
only, kept in the outbox row where the other channels keep their sealed envelope, and purged
with it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store import delivery_records
from gateway.store.tables import outbox


async def kept(conn: AsyncConnection, id_: str) -> tuple[str, bytes] | None:
    """(certificate fingerprint, CMS DER) made for the disclosure, if any."""
    row = (
        await conn.execute(
            select(outbox.c.smime_cert, outbox.c.smime_cms).where(outbox.c.disclosure_id == id_)
        )
    ).one_or_none()
    if row is None or row.smime_cms is None:
        return None
    return str(row.smime_cert), bytes(row.smime_cms)


async def keep(
    conn: AsyncConnection, id_: str, *, fingerprint: str, cms: bytes, digest: str, at: datetime
) -> None:
    """Keep the CMS and make its digest the one a receipt must carry, before it is first sent."""
    await conn.execute(
        update(outbox)
        .where(outbox.c.disclosure_id == id_)
        .values(smime_cert=fingerprint, smime_cms=cms)
    )
    await delivery_records.add_event(
        conn,
        id_,
        "smime_sealed",
        at=at,
        detail={"smime_cert": fingerprint, "digest": digest},
        changes={"digest": digest},
    )
