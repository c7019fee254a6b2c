"""Outbox claims: leases, no double claims across connections, release and state moves."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import select

from gateway.delivery.embedded import EmbeddedOptions, EmbeddedQueue
from gateway.delivery.worker import DeliveryWorker
from gateway.store import outbox
from gateway.store.database import Store
from gateway.store.group_commit import SetWise
from gateway.store.outbox import ClaimRound
from gateway.store.tables import outbox as outbox_table
from gateway.store.unit_of_work import Connection
from tests.integration.store_support import (
    T0,
    new_disclosure,
    open_store,
    protection,
    record_accepted,
)

LEASE = timedelta(seconds=30)


async def test_claim_lease_release_and_publish(database_url: str, tmp_path: Path) -> None:
    prot = protection(tmp_path)
    async with open_store(database_url) as store:
        ids = []
        for i in range(3):
            new = new_disclosure(prot)
            ids.append(new.id)
            await record_accepted(store, new, envelope=b"jwe-%d" % i, digest=f"d{i}")
        first = await store.write(
            lambda conn: conn.run_sync(outbox.claim, owner="relay-a", now=T0, lease=LEASE, limit=2)
        )
        second = await store.write(
            lambda conn: conn.run_sync(outbox.claim, owner="relay-b", now=T0, lease=LEASE)
        )
        assert [i.disclosure_id for i in first] == ids[:2]
        assert [i.disclosure_id for i in second] == ids[2:]
        assert first[0].envelope == b"jwe-0"
        assert first[0].attempts == 1
        # both leases run out (relays died): relay-b takes every row again (attempt 2)
        later = T0 + LEASE + timedelta(seconds=1)

        async def relays_move_on(
            conn: Connection,
        ) -> tuple[list[outbox.OutboxItem], int, int, bool]:
            retaken = await conn.run_sync(
                outbox.claim, owner="relay-b", now=later, lease=LEASE, limit=2
            )
            stale = await conn.run_sync(
                outbox.mark, [first[0].id], owner="relay-a", state="published", now=later
            )
            marked = await conn.run_sync(
                outbox.mark, [i.id for i in retaken], owner="relay-b", state="published", now=later
            )
            released = await outbox.release(
                conn, second[0].id, owner="relay-b", available_at=later + LEASE
            )
            return retaken, stale, marked, released

        retaken, stale, marked, released = await store.write(relays_move_on)
        assert [(i.disclosure_id, i.attempts) for i in retaken] == [(ids[0], 2), (ids[1], 2)]
        assert (stale, marked, released) == (0, 2, True)

        async def after(conn: Connection) -> tuple[list[outbox.OutboxItem], int, bool]:
            pending = await conn.run_sync(outbox.claim, owner="relay-c", now=later, lease=LEASE)
            published = await conn.run_sync(
                outbox.claim, owner="worker", now=later, lease=LEASE, state="published"
            )
            return pending, len(published), await outbox.requeue(conn, ids[0], now=later)

        assert await store.write(after) == ([], 2, True)


async def test_concurrent_claimers_never_share_a_row(database_url: str, tmp_path: Path) -> None:
    prot = protection(tmp_path)
    async with contextlib.AsyncExitStack() as stack:
        # A store each, as relays in separate processes have: their claims race across connections.
        stores = [await stack.enter_async_context(open_store(database_url)) for _ in range(4)]
        for _ in range(40):
            await record_accepted(stores[0], new_disclosure(prot), envelope=b"x")

        async def claimer(store: Store, name: str) -> list[str]:
            taken: list[str] = []
            while True:
                items = await store.write(
                    lambda conn: conn.run_sync(
                        outbox.claim, owner=name, now=T0, lease=LEASE, limit=3
                    )
                )
                if not items:
                    return taken
                taken += [i.disclosure_id for i in items]

        results = await asyncio.gather(*(claimer(s, f"c{i}") for i, s in enumerate(stores)))
    every = [d for taken in results for d in taken]
    assert len(every) == 40
    assert len(set(every)) == 40


async def test_only_the_holder_extends_a_lease(database_url: str, tmp_path: Path) -> None:
    prot = protection(tmp_path)
    async with open_store(database_url) as store:
        for i in range(2):
            await record_accepted(store, new_disclosure(prot), digest=f"d{i}")

        async def hold_and_extend(conn: Connection) -> tuple[list[int], list[int]]:
            held = await conn.run_sync(outbox.claim, owner="worker-a", now=T0, lease=LEASE, limit=2)
            ids = [item.id for item in held]
            extended = [
                await outbox.extend_leases(conn, ids, owner="worker-b", until=T0 + LEASE * 9),
                await outbox.extend_leases(conn, ids, owner="worker-a", until=T0 + LEASE * 3),
                await outbox.extend_leases(conn, [], owner="worker-a", until=T0),
            ]
            return ids, extended

        ids, extended = await store.write(hold_and_extend)
        assert extended == [0, 2, 0]
        later = T0 + LEASE * 2  # past the first lease, within the extended one
        assert (
            await store.write(
                lambda conn: conn.run_sync(outbox.claim, owner="worker-b", now=later, lease=LEASE)
            )
            == []
        )
        retaken = await store.write(
            lambda conn: conn.run_sync(
                outbox.claim, owner="worker-b", now=T0 + LEASE * 4, lease=LEASE
            )
        )
        assert sorted(item.id for item in retaken) == sorted(ids)


async def test_a_cancelled_claim_leaves_no_stale_mark_for_a_replayed_row(
    database_url: str, tmp_path: Path
) -> None:
    """A claim whose caller was cancelled still commits: its marks must not be applied again
    later, where they would settle a row a replay made due and that claim took again."""
    async with open_store(database_url) as store:
        new = new_disclosure(protection(tmp_path))
        await record_accepted(store, new, envelope=b"jwe", digest="d")
        queue = EmbeddedQueue(
            cast(DeliveryWorker, None),  # never reached: no claim here starts a delivery
            store=store,
            clock=lambda: T0,
            options=EmbeddedOptions("w1", lease=LEASE),
        )
        first = ClaimRound("w1", T0, LEASE, per_partner=16, inflight={})
        [taken] = await store.write(SetWise(outbox.claim_rounds, first))
        # The delivery finished; its row is marked by the queue's next claim.
        queue._settled.append(outbox.Mark(taken.item.id, "w1", outbox.DELIVERED, T0))
        await store.write(lambda conn: outbox.requeue(conn, new.id, now=T0))  # an admin replay

        round_ = asyncio.create_task(queue.claim_round())
        await asyncio.sleep(0)  # the claim is queued for the writer
        round_.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await round_

        async def row() -> Any:
            async with store.read() as conn:
                query = select(outbox_table).where(outbox_table.c.id == taken.item.id)
                return (await conn.execute(query)).one()

        for _ in range(200):  # the cancelled caller's claim commits all the same
            if (await row()).lease_owner == "w1":
                break
            await asyncio.sleep(0.01)
        assert (await row()).lease_owner == "w1"
        await queue.drain(grace=0)
        assert (await row()).state == outbox.PENDING  # still to be sent again, not `delivered`
