"""Set-wise writes and coalesced reads (status moves, receipts, outbox marks), on both backends.

These are what concurrent deliveries and receipts go through: many items, one transaction, a few
statements. Each test checks that a batch gives every item the answer it would get alone.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, func, select

from gateway.errors import NotFoundError
from gateway.store import disclosures, outbox, receipt_rows, status_moves
from gateway.store.database import Store
from gateway.store.disclosure_model import Status
from gateway.store.group_commit import SetWise
from gateway.store.outbox import ClaimRound, claim_rounds
from gateway.store.tables import held_records
from gateway.store.tables import outbox as outbox_table
from gateway.store.unit_of_work import Connection
from tests.integration.store_support import (
    CLIENT,
    T0,
    audit_entries,
    new_disclosure,
    open_store,
    protection,
)

LATER = T0 + timedelta(minutes=1)


async def _accepted(store: Store, tmp_path: Path, n: int) -> list[str]:
    prot = protection(tmp_path)
    news = [new_disclosure(prot) for _ in range(n)]

    async def work(conn: Connection) -> None:
        for new in news:
            await disclosures.record_accepted(
                conn, new, envelope=b"jwe", digest="d", actor=CLIENT, at=T0
            )

    await store.write(work)
    return [new.id for new in news]


def _move(id_: str, to: Status, event: str, **extra: object) -> status_moves.Move:
    return status_moves.Move(id_, to, event, CLIENT, LATER, **extra)  # type: ignore[arg-type]


async def _audit_count(store: Store) -> int:
    async with store.read() as conn:
        return await audit_entries(conn)


async def test_a_batch_judges_each_move_against_the_status_the_last_one_left(
    database_url: str, tmp_path: Path
) -> None:
    async with open_store(database_url) as store:
        first, second = await _accepted(store, tmp_path, 2)
        audited = await _audit_count(store)
        moves = [
            _move(first, Status.DISPATCHED, "dispatched", changes={"attempts": 2}),
            _move(second, Status.RECEIPTED, "receipted", detail={"via": "api"}),
            _move(first, Status.RECEIPTED, "receipted"),
            _move(first, Status.DISPATCHED, "dispatched"),  # after its receipt: refused
        ]
        results = await store.write(lambda conn: conn.run_sync(status_moves.apply, moves))
        assert results == [
            status_moves.Moved(Status.QUEUED, True),
            status_moves.Moved(Status.QUEUED, True),
            status_moves.Moved(Status.DISPATCHED, True),
            status_moves.Moved(Status.RECEIPTED, False),
        ]
        async with store.read() as conn:
            one, two = await conn.run_sync(disclosures.get_many, [first, second])
            first_events = await disclosures.timeline(conn, first)
            second_events = await disclosures.timeline(conn, second)
        assert one is not None
        assert two is not None
        assert (one.status, one.attempts, one.updated_at) == (Status.RECEIPTED, 2, LATER)
        assert two.status is Status.RECEIPTED
        assert [e.type for e in first_events] == ["accepted", "dispatched", "receipted"]
        assert [e.type for e in second_events] == ["accepted", "receipted"]
        assert second_events[1].detail == {"via": "api"}
        assert await _audit_count(store) == audited + 3  # the refused move wrote nothing


async def test_a_handover_overtaken_by_its_receipt_is_still_recorded(
    database_url: str, tmp_path: Path
) -> None:
    async with open_store(database_url) as store:
        (id_,) = await _accepted(store, tmp_path, 1)
        await store.write(
            lambda conn: conn.run_sync(
                status_moves.apply, [_move(id_, Status.RECEIPTED, "receipted")]
            )
        )
        audited = await _audit_count(store)
        late = _move(
            id_, Status.DISPATCHED, "dispatched", detail={"status": 202},
            changes={"attempts": 1}, record_if_refused=True,
        )  # fmt: skip
        (result,) = await store.write(lambda conn: conn.run_sync(status_moves.apply, [late]))
        assert result == status_moves.Moved(Status.RECEIPTED, False)
        async with store.read() as conn:
            stored = await disclosures.get(conn, id_)
            events = await disclosures.timeline(conn, id_)
        assert stored is not None
        assert (stored.status, stored.attempts) == (Status.RECEIPTED, 1)  # status kept
        assert [e.type for e in events] == ["accepted", "receipted", "dispatched"]
        assert events[2].detail == {"status": 202}
        assert await _audit_count(store) == audited + 1


async def test_a_missing_disclosure_fails_only_its_own_move(
    database_url: str, tmp_path: Path
) -> None:
    async with open_store(database_url) as store:
        ids = await _accepted(store, tmp_path, 3)
        missing = [_move("no-such-id", Status.FAILED, "failed")]
        with pytest.raises(NotFoundError):
            await store.write(lambda conn: conn.run_sync(status_moves.apply, missing))
        submitted = [_move(i, Status.DISPATCHED, "dispatched") for i in ids]
        submitted.insert(1, _move("no-such-id", Status.DISPATCHED, "dispatched"))
        results = await asyncio.gather(
            *(store.write(SetWise(status_moves.apply, m)) for m in submitted),
            return_exceptions=True,
        )
        assert isinstance(results[1], NotFoundError)
        assert [r for i, r in enumerate(results) if i != 1] == [
            status_moves.Moved(Status.QUEUED, True)
        ] * 3
        async with store.read() as conn:
            found = await conn.run_sync(disclosures.get_many, ids)
        assert [d.status for d in found if d is not None] == [Status.DISPATCHED] * 3


async def test_rejecting_in_a_batch_destroys_the_held_record(
    database_url: str, tmp_path: Path
) -> None:
    prot = protection(tmp_path)
    new = new_disclosure(prot)
    async with open_store(database_url) as store:
        await store.write(
            lambda conn: disclosures.record_held(
                conn, new, request=b"{}", protection=prot, actor=CLIENT, at=T0
            )
        )
        rejected = [_move(new.id, Status.REJECTED, "rejected")]
        (result,) = await store.write(lambda conn: conn.run_sync(status_moves.apply, rejected))
        assert result.moved
        async with store.read() as conn:
            held = await conn.scalar(select(func.count()).select_from(held_records))
        assert held == 0


async def test_receipts_repeated_in_a_batch_or_replayed_are_not_fresh(
    database_url: str, tmp_path: Path
) -> None:
    async with open_store(database_url) as store:
        first, second = await _accepted(store, tmp_path, 2)

        def receipt(rid: str, disclosure: str) -> receipt_rows.StoredReceipt:
            return receipt_rows.StoredReceipt(
                rid, disclosure, "received", None, "eyJ.x.y", T0, "k", "kent-police"
            )

        assert await store.write(lambda conn: receipt_rows.record(conn, receipt("r-old", first)))
        batch = [receipt("r-1", first), receipt("r-old", first), receipt("r-1", first)]
        batch.append(receipt("r-2", second))

        fresh = await store.write(lambda conn: conn.run_sync(receipt_rows.record_many, batch))
        assert fresh == [True, False, False, True]
        assert await store.write(lambda conn: conn.run_sync(receipt_rows.record_many, [])) == []
        async with store.read() as conn:
            assert await receipt_rows.for_disclosure(conn, second) == batch[3]


async def test_outbox_marks_apply_per_owner_and_leave_other_owners_rows(
    database_url: str, tmp_path: Path
) -> None:
    async with open_store(database_url) as store:
        await _accepted(store, tmp_path, 3)
        lease = timedelta(minutes=5)
        mine = await store.write(
            lambda conn: conn.run_sync(outbox.claim, owner="w1", now=T0, lease=lease, limit=2)
        )
        theirs = await store.write(
            lambda conn: conn.run_sync(outbox.claim, owner="w2", now=T0, lease=lease, limit=1)
        )
        marks = [outbox.Mark(item.id, "w1", outbox.DELIVERED, LATER) for item in mine]
        marks.append(outbox.Mark(theirs[0].id, "w1", outbox.DELIVERED, LATER))  # not w1's row
        await asyncio.gather(*(store.write(SetWise(outbox.mark_each, m)) for m in marks))
        async with store.read() as conn:
            rows = {
                row.id: (row.state, row.lease_owner)
                for row in await conn.execute(select(outbox_table))
            }
        assert [rows[item.id] for item in mine] == [(outbox.DELIVERED, None)] * 2
        assert rows[theirs[0].id] == (outbox.PENDING, "w2")


async def test_an_embedded_claim_respects_each_partners_room_and_reads_the_disclosures(
    database_url: str, tmp_path: Path
) -> None:
    prot = protection(tmp_path)
    async with open_store(database_url) as store:
        news = [
            new_disclosure(prot, partner=p) for p in ("alpha", "alpha", "alpha", "beta", "beta")
        ]

        async def accept_all(conn: Connection) -> None:
            for new in news:
                await disclosures.record_accepted(
                    conn, new, envelope=b"jwe", digest="d", actor=CLIENT, at=T0
                )

        await store.write(accept_all)
        claim = ClaimRound("w1", LATER, timedelta(minutes=5), per_partner=2, inflight={"beta": 1})
        claimed = await store.write(SetWise(claim_rounds, claim))
        by_partner = sorted(c.item.partner_id for c in claimed)
        assert by_partner == ["alpha", "alpha", "beta"]  # alpha: room 2 of 3 due; beta: 1 of 2
        for each in claimed:
            assert each.disclosure is not None
            assert each.disclosure.id == each.item.disclosure_id
            assert each.disclosure.status is Status.QUEUED
        again = await store.write(SetWise(claim_rounds, claim))  # leased rows are not claimed twice
        assert sorted(c.item.partner_id for c in again) == ["alpha", "beta"]


async def test_a_claim_never_takes_back_a_row_its_claimer_still_holds(
    database_url: str, tmp_path: Path
) -> None:
    """A lease that ran out while its renewal waited for a commit is not claimed by its holder."""
    async with open_store(database_url) as store:
        await _accepted(store, tmp_path, 1)
        short = timedelta(milliseconds=1)
        first = ClaimRound("w1", T0, short, per_partner=5, inflight={})
        [taken] = await store.write(SetWise(claim_rounds, first))
        later = ClaimRound("w1", LATER, short, per_partner=5, inflight={})
        held = ClaimRound(
            "w1", LATER, short, per_partner=5, inflight={}, held=frozenset({taken.item.id})
        )
        assert await store.write(SetWise(claim_rounds, held)) == []
        [again] = await store.write(SetWise(claim_rounds, later))  # the check means something
        assert again.item.id == taken.item.id


async def test_a_partners_room_is_shared_by_every_claimer(
    database_url: str, tmp_path: Path
) -> None:
    """Leases are counted per partner across processes: two workers never exceed the limit."""
    prot = protection(tmp_path)
    async with open_store(database_url) as store, open_store(database_url) as other:
        news = [new_disclosure(prot, partner="alpha") for _ in range(12)]

        async def accept_all(conn: Connection) -> None:
            for new in news:
                await disclosures.record_accepted(
                    conn, new, envelope=b"jwe", digest="d", actor=CLIENT, at=T0
                )

        await store.write(accept_all)
        lease = timedelta(minutes=5)
        first = ClaimRound("w1", LATER, lease, per_partner=4, inflight={})
        second = ClaimRound("w2", LATER, lease, per_partner=4, inflight={})
        # At the same moment, from two stores (two processes' pools).
        a, b = await asyncio.gather(
            store.write(SetWise(claim_rounds, first)), other.write(SetWise(claim_rounds, second))
        )
        assert len(a) + len(b) == 4
        owner, held = ("w1", a) if a else ("w2", b)
        done = outbox.Mark(held[0].item.id, owner, "delivered", LATER)
        await store.write(SetWise(outbox.mark_each, done))
        later = ClaimRound("w3", LATER, lease, per_partner=4, inflight={})
        assert len(await other.write(SetWise(claim_rounds, later))) == 1  # one slot came free


async def test_a_claim_first_marks_the_rows_its_claimer_settled(
    database_url: str, tmp_path: Path
) -> None:
    """A finished row is marked `delivered` by its claimer's next claim, in that transaction."""
    async with open_store(database_url) as store:
        await _accepted(store, tmp_path, 3)
        lease = timedelta(minutes=5)
        [first] = await store.write(SetWise(claim_rounds, ClaimRound("w1", LATER, lease, 1, {})))
        assert await store.write(SetWise(claim_rounds, ClaimRound("w2", LATER, lease, 1, {}))) == []
        done = outbox.Mark(first.item.id, "w1", outbox.DELIVERED, LATER)
        settling = ClaimRound("w1", LATER, lease, 1, {}, settled=(done,))
        [second] = await store.write(SetWise(claim_rounds, settling))
        assert second.item.id != first.item.id
        async with store.read() as conn:
            states = {r.id: r.state for r in await conn.execute(select(outbox_table))}
        assert states[first.item.id] == outbox.DELIVERED
        assert states[second.item.id] == outbox.PENDING  # leased to w1, in flight


async def test_reads_asked_for_together_are_made_with_one_statement(
    database_url: str, tmp_path: Path
) -> None:
    """Each caller gets its own disclosure (None for an unknown id), from one SELECT for all."""
    async with open_store(database_url) as store:
        ids = await _accepted(store, tmp_path, 10)
        selects: list[str] = []

        def count(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
            if statement.lstrip().upper().startswith("SELECT") and "disclosures" in statement:
                selects.append(statement)

        event.listen(store.engine.sync_engine, "before_cursor_execute", count)
        asked = [*ids, "no-such-disclosure"]
        found = await asyncio.gather(
            *(store.read_together(SetWise(disclosures.get_many, id_)) for id_ in asked)
        )
        event.remove(store.engine.sync_engine, "before_cursor_execute", count)
        assert [d.id if d else None for d in found] == [*ids, None]
        assert len(selects) == 1
