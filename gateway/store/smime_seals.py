"""The S/MIME message an email disclosure goes as, made once and kept beside its envelope.

A CMS EnvelopedData is new bytes every time it is made (a random content key), and a receipt
digests those bytes, so the worker makes it once per disclosure and every attempt sends the
same, while the partner certificate it was made for and the council certificate it was signed
with stay usable. It is ciphertext for the partner only, kept in the outbox row where the other
channels keep their sealed envelope, and purged with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store import delivery_records
from gateway.store.disclosure_model import Status
from gateway.store.tables import disclosures as disclosure_rows
from gateway.store.tables import outbox


@dataclass(frozen=True, slots=True)
class Seal:
    """A CMS made for a disclosure: the partner certificate it is for (fingerprint), the
    council certificate that signed it (None: not on record), and its DER."""

    cert: str
    signer: str | None
    cms: bytes


async def kept(conn: AsyncConnection, id_: str) -> Seal | None:
    """The CMS kept for the disclosure, if any."""
    row = (
        await conn.execute(
            select(outbox.c.smime_cert, outbox.c.smime_signer, outbox.c.smime_cms).where(
                outbox.c.disclosure_id == id_
            )
        )
    ).one_or_none()
    if row is None or row.smime_cms is None:
        return None
    signer = str(row.smime_signer) if row.smime_signer is not None else None
    return Seal(str(row.smime_cert), signer, bytes(row.smime_cms))


async def keep(
    conn: AsyncConnection,
    id_: str,
    seal: Seal,
    *,
    replacing: bytes | None,
    digest: str,
    at: datetime,
) -> bool:
    """Keep `seal` and make its digest the one a receipt must carry, before it is first sent.

    A compare-and-set: only if the row still holds what this attempt found (`replacing`, None
    for no CMS) and the disclosure is still queued. False when another attempt kept its own
    first (send that one: two CMSes out would leave a receipt for one refused) or the
    disclosure moved on; then nothing is recorded.
    """
    found = outbox.c.smime_cms.is_(None) if replacing is None else outbox.c.smime_cms == replacing
    queued = exists().where(
        disclosure_rows.c.id == id_, disclosure_rows.c.status == str(Status.QUEUED)
    )
    result = await conn.execute(
        update(outbox)
        .where(outbox.c.disclosure_id == id_, found, queued)
        .values(smime_cert=seal.cert, smime_signer=seal.signer, smime_cms=seal.cms)
    )
    if result.rowcount != 1:
        return False
    await delivery_records.add_event(
        conn,
        id_,
        "smime_sealed",
        at=at,
        detail={"smime_cert": seal.cert, "smime_signer": seal.signer or "", "digest": digest},
        changes={"digest": digest},
    )
    return True
