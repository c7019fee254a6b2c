"""Outbox claims: leases, no double claims across connections, release and state moves."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from gateway.store import disclosures, outbox
from tests.integration.store_support import (
    CLIENT,
    T0,
    new_disclosure,
    open_store,
    protection,
    transaction,
)

LEASE = timedelta(seconds=30)


async def test_claim_lease_release_and_publish(database_url: str, tmp_path: Path) -> None:
    prot = protection(tmp_path)
    async with open_store(database_url) as store:
        ids = []
        for i in range(3):
            new = new_disclosure(prot)
            ids.append(new.id)
            async with transaction(store) as conn:
                await disclosures.record_accepted(
                    conn, new, envelope=b"jwe-%d" % i, digest=f"d{i}", actor=CLIENT, at=T0
                )
        async with transaction(store) as conn:
            first = await outbox.claim(conn, owner="relay-a", now=T0, lease=LEASE, limit=2)
        async with transaction(store) as conn:
            second = await outbox.claim(conn, owner="relay-b", now=T0, lease=LEASE)
        assert [i.disclosure_id for i in first] == ids[:2]
        assert [i.disclosure_id for i in second] == ids[2:]
        assert first[0].envelope == b"jwe-0"
        assert first[0].attempts == 1
        async with transaction(store) as conn:
            # both leases run out (relays died): relay-b takes every row again (attempt 2)
            later = T0 + LEASE + timedelta(seconds=1)
            retaken = await outbox.claim(conn, owner="relay-b", now=later, lease=LEASE, limit=2)
            assert [(i.disclosure_id, i.attempts) for i in retaken] == [(ids[0], 2), (ids[1], 2)]
            assert (
                await outbox.mark(
                    conn, [first[0].id], owner="relay-a", state="published", now=later
                )
                == 0
            )
            assert (
                await outbox.mark(
                    conn, [i.id for i in retaken], owner="relay-b", state="published", now=later
                )
                == 2
            )
            assert await outbox.release(
                conn, second[0].id, owner="relay-b", available_at=later + LEASE
            )
        async with transaction(store) as conn:
            assert await outbox.claim(conn, owner="relay-c", now=later, lease=LEASE) == []
            published = await outbox.claim(
                conn, owner="worker", now=later, lease=LEASE, state="published"
            )
            assert len(published) == 2
            assert await outbox.requeue(conn, ids[0], now=later)


async def test_concurrent_claimers_never_share_a_row(database_url: str, tmp_path: Path) -> None:
    prot = protection(tmp_path)
    async with open_store(database_url) as store:
        for _ in range(40):
            async with transaction(store) as conn:
                await disclosures.record_accepted(
                    conn, new_disclosure(prot), envelope=b"x", digest="d", actor=CLIENT, at=T0
                )

        async def claimer(name: str) -> list[str]:
            taken: list[str] = []
            while True:
                async with transaction(store) as conn:
                    items = await outbox.claim(conn, owner=name, now=T0, lease=LEASE, limit=3)
                if not items:
                    return taken
                taken += [i.disclosure_id for i in items]

        results = await asyncio.gather(*(claimer(f"c{i}") for i in range(4)))
    every = [d for taken in results for d in taken]
    assert len(every) == 40
    assert len(set(every)) == 40


async def test_only_the_holder_extends_a_lease(database_url: str, tmp_path: Path) -> None:
    prot = protection(tmp_path)
    async with open_store(database_url) as store:
        for i in range(2):
            async with transaction(store) as conn:
                await disclosures.record_accepted(
                    conn, new_disclosure(prot), envelope=b"jwe", digest=f"d{i}", actor=CLIENT,
                    at=T0,
                )  # fmt: skip
        async with transaction(store) as conn:
            held = await outbox.claim(conn, owner="worker-a", now=T0, lease=LEASE, limit=2)
            ids = [item.id for item in held]
            assert (
                await outbox.extend_leases(conn, ids, owner="worker-b", until=T0 + LEASE * 9) == 0
            )
            assert (
                await outbox.extend_leases(conn, ids, owner="worker-a", until=T0 + LEASE * 3) == 2
            )
            assert await outbox.extend_leases(conn, [], owner="worker-a", until=T0) == 0
        later = T0 + LEASE * 2  # past the first lease, within the extended one
        async with transaction(store) as conn:
            assert await outbox.claim(conn, owner="worker-b", now=later, lease=LEASE) == []
            retaken = await outbox.claim(conn, owner="worker-b", now=T0 + LEASE * 4, lease=LEASE)
        assert sorted(item.id for item in retaken) == sorted(ids)
