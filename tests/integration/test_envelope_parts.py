"""A large envelope is stored in parts and comes back whole; small ones stay in their row; the
parts go with the envelope when retention purges it."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from gateway import retention
from gateway.store import disclosures, envelope_parts, outbox
from gateway.store.database import Store
from gateway.store.disclosure_model import NewDisclosure, Status
from gateway.store.group_commit import SetWise
from gateway.store.tables import outbox as outbox_table
from gateway.store.tables import outbox_parts
from gateway.store.unit_of_work import Connection
from tests.integration.store_support import (
    CLIENT,
    T0,
    new_disclosure,
    open_store,
    protection,
    record_accepted,
)

LEASE = timedelta(seconds=30)
LARGE = os.urandom(9 * envelope_parts.PART_BYTES + 1234)  # ciphertext-like: ten parts,
# more than are fetched at once
SMALL = b"x" * envelope_parts.PART_BYTES  # exactly the limit: stays in its row


async def _stored(store: Store, id_: str) -> tuple[int, int, int]:
    """(length of the row's envelope, its parts column, rows in outbox_parts)."""
    async with store.read() as conn:
        row = (
            await conn.execute(
                select(func.length(outbox_table.c.envelope), outbox_table.c.parts).where(
                    outbox_table.c.disclosure_id == id_
                )
            )
        ).one()
        count = await conn.scalar(
            select(func.count())
            .select_from(outbox_parts)
            .where(outbox_parts.c.disclosure_id == id_)
        )
    return int(row[0]), int(row[1]), int(count or 0)


async def _claim_all(store: Store) -> dict[str, bytes]:
    items = await store.write(
        lambda conn: conn.run_sync(outbox.claim, owner="w", now=T0, lease=LEASE, limit=10)
    )
    return {item.disclosure_id: item.envelope for item in items}


async def test_a_large_envelope_is_stored_in_parts_and_claimed_whole(
    database_url: str, tmp_path: Path
) -> None:
    prot = protection(tmp_path)
    large, small = new_disclosure(prot), new_disclosure(prot)
    async with open_store(database_url) as store:
        # the hot path: set-wise, several at once
        await store.write(_accepted(large, LARGE))
        await record_accepted(store, small, envelope=SMALL)
        assert await _stored(store, large.id) == (0, 10, 10)
        assert await _stored(store, small.id) == (len(SMALL), 0, 0)
        claimed = await _claim_all(store)
    assert claimed == {large.id: LARGE, small.id: SMALL}


def _accepted(new: NewDisclosure, envelope: bytes) -> SetWise[disclosures.AcceptedDisclosure, None]:
    """The set-wise write submitting a disclosure makes."""
    accepted = disclosures.AcceptedDisclosure(new, envelope, "d", CLIENT, T0)
    return SetWise(disclosures.record_accepted_setwise, accepted)


async def test_an_approved_large_envelope_is_stored_in_parts(
    database_url: str, tmp_path: Path
) -> None:
    prot = protection(tmp_path)
    held = new_disclosure(prot)
    async with open_store(database_url) as store:

        async def hold_then_approve(conn: Connection) -> None:
            await disclosures.record_held(
                conn, held, request=b"{}", protection=prot, actor=CLIENT, at=T0
            )
            await disclosures.release_approved(
                conn,
                held.id,
                envelope=LARGE,
                digest="d",
                approver="cg-1",
                fields_sent=(),
                fields_removed=(),
                key_ids=("s", "e"),
                actor=CLIENT,
                at=T0,
            )

        await store.write(hold_then_approve)
        assert await _stored(store, held.id) == (0, 10, 10)
        assert await _claim_all(store) == {held.id: LARGE}


async def test_purging_the_envelope_purges_its_parts(database_url: str, tmp_path: Path) -> None:
    prot = protection(tmp_path)
    new = new_disclosure(prot, retain_until=T0 + timedelta(days=30))
    async with open_store(database_url) as store:
        await store.write(_accepted(new, LARGE))

        async def receipted(conn: Connection) -> None:
            await disclosures.transition(
                conn, new.id, Status.RECEIPTED, event_type="receipted", actor=CLIENT, at=T0
            )

        await store.write(receipted)
        now = T0 + timedelta(days=31)
        report = await retention.run(store, now=now, records_retention=timedelta(days=3650))
        assert report.envelopes_purged == [new.id]
        async with store.read() as conn:
            left = await conn.scalar(select(func.count()).select_from(outbox_parts))
        assert left == 0
