"""The audit chain: appends, sealing, checkpoints, and verify catching every kind of tampering."""

from __future__ import annotations

import asyncio
import functools
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway import audit
from gateway.audit_verify import verify
from gateway.background import Loops
from gateway.store import audit_log as audit_sql
from gateway.store.database import Store
from gateway.store.tables import audit_checkpoints, audit_head, audit_log
from tests.integration.store_support import (
    ADMIN,
    CLIENT,
    T0,
    checkpoint_keys,
    open_store,
)

REPO = str(Path(__file__).resolve().parents[2])
N = 12  # entries per test chain; checkpoints every 5 -> at 5 and 10, tail 11..12 unsigned


async def build_chain(
    store: Store, signer: audit.CheckpointSigner, n: int = N, every: int = 5
) -> None:
    """Append n entries in separate transactions, sealing with checkpoints every `every`."""
    for i in range(n):
        at = T0 + timedelta(seconds=i)
        entry = functools.partial(
            audit.append,
            actor=CLIENT,
            action="disclosure.accepted",
            at=at,
            targets={"disclosure": f"d-{i}"},
            details={"fields_sent": ["person.name"], "n": i},
        )
        await store.write(entry)
        await store.write(
            functools.partial(audit.seal, at=at, signer=signer, checkpoint_every=every)
        )


async def test_a_sealed_chain_verifies(database_url: str) -> None:
    async with open_store(database_url) as store:
        signer, verifier = checkpoint_keys()
        for i in range(N):

            async def append_and_seal(conn: AsyncConnection, n: int = i) -> None:
                await audit.append(conn, CLIENT, "x.done", at=T0, details={"n": n})
                await audit.seal(conn, at=T0, signer=signer, checkpoint_every=5)

            await store.write(append_and_seal)
        report = await verify(store, verifier, now=T0)
    assert report.ok, report.broken
    assert (report.entries, report.head_seq, report.checkpoints) == (N, N, 2)
    assert report.last_checkpoint_seq == 10
    assert report.signatures_checked


async def _append(store: Store, action: str, **details: int) -> None:
    async def work(conn: AsyncConnection) -> None:
        await audit.append(conn, CLIENT, action, at=T0, details=details)

    await store.write(work)


async def test_entries_are_chained_where_appended_on_sqlite_and_staged_on_postgresql(
    database_url: str,
) -> None:
    async with open_store(database_url) as store:
        await asyncio.gather(*(_append(store, a) for a in ("disclosure.denied", "x.done")))
        before = await verify(store, now=T0)
        sealer = audit.AuditSealer(store, clock=lambda: T0)
        sealed = await sealer.seal_now()
        after = await verify(store, now=T0)
    assert before.ok, before.broken
    if database_url.startswith("sqlite"):  # the write lock is the chain lock: chained at once
        assert (before.pending, before.entries, sealed) == (0, 2, 0)
    else:
        assert (before.pending, before.entries, before.oldest_pending_at) == (2, 0, T0)
        assert sealed == 2
    assert (after.pending, after.entries, after.ok) == (0, 2, True)


async def test_the_background_sealer_chains_staged_entries_and_signs_checkpoints_due(
    database_url: str,
) -> None:
    signer, verifier = checkpoint_keys()
    async with open_store(database_url) as store:
        sealer = audit.AuditSealer(store, clock=lambda: T0, signer=signer)
        loops = Loops()
        loops.start("audit-sealer", 0.02, sealer.seal_if_due, failed="audit_seal_failed")
        try:
            for i in range(audit.CHECKPOINT_EVERY):
                await _append(store, "x.done", n=i)
            for _ in range(200):  # while it runs, not at stop()
                report = await verify(store, verifier, now=T0)
                if report.pending == 0 and report.checkpoints == 1:
                    break
                await asyncio.sleep(0.05)
        finally:
            await loops.stop()
    assert (report.pending, report.entries, report.checkpoints) == (0, audit.CHECKPOINT_EVERY, 1)
    assert report.ok, report.broken


async def test_entries_an_earlier_version_left_staged_join_the_chain(sqlite_url: str) -> None:
    """Staged entries (as older versions wrote them on SQLite) and inline ones form one chain."""
    async with open_store(sqlite_url) as store:

        async def staged(conn: AsyncConnection) -> None:
            row = audit.pending_row(CLIENT, "disclosure.denied", at=T0, details={"n": 1})
            await conn.run_sync(audit_sql.insert_pending, [row])

        await store.write(staged)
        await _append(store, "disclosure.accepted")  # chained at once
        sealer = audit.AuditSealer(store, clock=lambda: T0)
        assert await sealer.seal_now() == 1
        report = await verify(store, now=T0)
    assert report.ok, report.broken
    assert (report.pending, report.entries) == (0, 2)


async def test_checkpoints_are_signed_for_entries_chained_inline(database_url: str) -> None:
    """Entries chained without a signer; the sealer signs every checkpoint due."""
    signer, verifier = checkpoint_keys()
    async with open_store(database_url) as store:
        for i in range(N):
            await _append(store, f"x.done-{i}")

        async def seal(conn: AsyncConnection) -> None:
            await audit.seal(conn, at=T0, signer=signer, checkpoint_every=5)

        await store.write(seal)
        report = await verify(store, verifier, now=T0)
    assert report.ok, report.broken
    assert (report.entries, report.checkpoints, report.last_checkpoint_seq) == (N, 2, 10)


async def test_record_is_chained_before_it_returns(database_url: str) -> None:
    async with open_store(database_url) as store:
        await audit.record(store, ADMIN, "agreement.applied", at=T0, targets={"agreement": "a@1"})
        async with store.read() as conn:
            row = (await conn.execute(select(audit_log))).one()
    assert (row.seq, row.actor_name, row.prev_hash) == (1, "dpo.jsmith", audit.GENESIS)


async def test_on_demand_checkpoint_signs_the_head(database_url: str) -> None:
    signer, verifier = checkpoint_keys()
    async with open_store(database_url) as store:
        await build_chain(store, signer, n=3, every=0)
        assert await audit.checkpoint(store, signer, at=T0) == 3
        assert await audit.checkpoint(store, signer, at=T0) == 3  # nothing new: no second one
        report = await verify(store, verifier, now=T0)
    assert report.ok
    assert (report.checkpoints, report.last_checkpoint_seq) == (1, 3)


async def test_free_text_in_details_is_refused(sqlite_url: str) -> None:
    async with open_store(sqlite_url) as store:
        with pytest.raises(ValueError, match="too long"):
            await store.write(
                lambda conn: audit.append(conn, CLIENT, "x", at=T0, details={"note": "x" * 500})
            )


async def _edit(conn) -> None:  # type: ignore[no-untyped-def]
    await conn.execute(update(audit_log).where(audit_log.c.seq == 4).values(actor_name="someone"))


async def _delete(conn) -> None:  # type: ignore[no-untyped-def]
    await conn.execute(delete(audit_log).where(audit_log.c.seq == 7))


async def _insert_tail(conn) -> None:  # type: ignore[no-untyped-def]
    """A forged entry correctly chained after the last one: only the head row disagrees."""
    last = (await conn.execute(select(audit_log).where(audit_log.c.seq == N))).one()
    fields = {
        "at": T0,
        "actor_kind": "admin",
        "actor_name": "intruder",
        "action": "x",
        "targets": "{}",
        "details": "{}",
    }
    digest = audit.entry_hash(seq=N + 1, prev_hash=last.hash, **fields)
    await conn.execute(
        audit_log.insert().values(seq=N + 1, prev_hash=last.hash, hash=digest, **fields)
    )


async def _insert_middle(conn) -> None:  # type: ignore[no-untyped-def]
    """Make room at seq 6 by renumbering the rest, then insert a forged entry there."""
    for seq in range(N, 5, -1):
        await conn.execute(update(audit_log).where(audit_log.c.seq == seq).values(seq=seq + 1))
    five = (await conn.execute(select(audit_log).where(audit_log.c.seq == 5))).one()
    fields = {
        "at": T0,
        "actor_kind": "admin",
        "actor_name": "intruder",
        "action": "x",
        "targets": "{}",
        "details": "{}",
    }
    digest = audit.entry_hash(seq=6, prev_hash=five.hash, **fields)
    await conn.execute(audit_log.insert().values(seq=6, prev_hash=five.hash, hash=digest, **fields))


async def _reorder(conn) -> None:  # type: ignore[no-untyped-def]
    """Swap entries 2 and 3 wholesale (seq numbers kept in place)."""
    await conn.execute(update(audit_log).where(audit_log.c.seq == 2).values(seq=-2))
    await conn.execute(update(audit_log).where(audit_log.c.seq == 3).values(seq=2))
    await conn.execute(update(audit_log).where(audit_log.c.seq == -2).values(seq=3))


async def _truncate_tail(conn) -> None:  # type: ignore[no-untyped-def]
    """Delete the two entries after the last checkpoint (seq 11, 12)."""
    await conn.execute(delete(audit_log).where(audit_log.c.seq > 10))


async def _truncate_tail_and_head(conn) -> None:  # type: ignore[no-untyped-def]
    """Cut back past the checkpoint at 10 and rewrite the head to match: the checkpoint remains."""
    eight = (await conn.execute(select(audit_log).where(audit_log.c.seq == 8))).one()
    await conn.execute(delete(audit_log).where(audit_log.c.seq > 8))
    await conn.execute(update(audit_head).values(seq=8, hash=eight.hash))


async def _rewrite_from(conn) -> None:  # type: ignore[no-untyped-def]
    """Edit entry 3 and recompute every later hash and the head: only checkpoints catch it."""
    rows = list(await conn.execute(select(audit_log).order_by(audit_log.c.seq)))
    prev = audit.GENESIS
    for row in rows:
        name = "someone" if row.seq == 3 else row.actor_name
        fields = {
            "at": row.at,
            "actor_kind": row.actor_kind,
            "actor_name": name,
            "action": row.action,
            "targets": row.targets,
            "details": row.details,
        }
        digest = audit.entry_hash(seq=row.seq, prev_hash=prev, **fields)
        await conn.execute(
            update(audit_log)
            .where(audit_log.c.seq == row.seq)
            .values(actor_name=name, prev_hash=prev, hash=digest)
        )
        prev = digest
    await conn.execute(update(audit_head).values(hash=prev))


async def _forge_checkpoint(conn) -> None:  # type: ignore[no-untyped-def]
    """Re-sign checkpoint 5 with a key the council never had."""
    forger, _ = checkpoint_keys("council-sig-test")
    row = (await conn.execute(select(audit_checkpoints).where(audit_checkpoints.c.seq == 5))).one()
    token = forger.sign_compact(
        audit.checkpoint_payload(5, row.hash, row.at), typ=audit.CHECKPOINT_TYP
    )
    await conn.execute(
        update(audit_checkpoints).where(audit_checkpoints.c.seq == 5).values(token=token)
    )


@pytest.mark.parametrize(
    ("tamper", "code", "seq"),
    [
        (_edit, "entry_altered", 4),
        (_delete, "entry_missing", 7),
        (_insert_tail, "entry_inserted", N + 1),
        (_insert_middle, "chain_broken", 7),  # the forged 6 links; the old 6 (now 7) does not
        (_reorder, "chain_broken", 2),
        (_truncate_tail, "chain_truncated", 11),
        (_truncate_tail_and_head, "checkpoint_beyond_chain", 10),
        (_rewrite_from, "checkpoint_mismatch", 5),
        (_forge_checkpoint, "checkpoint_signature_invalid", 5),
    ],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
async def test_verify_reports_the_first_broken_link(database_url: str, tamper, code, seq) -> None:  # type: ignore[no-untyped-def]
    async with open_store(database_url) as store:
        signer, verifier = checkpoint_keys()
        await build_chain(store, signer)
        assert (await verify(store, now=T0)).ok
        await store.write(tamper)
        report = await verify(store, verifier, now=T0)
    assert not report.ok
    assert report.broken is not None
    assert (report.broken.code, report.broken.seq) == (code, seq)


APPENDER = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    from gateway import audit
    from gateway.store.database import Store

    async def main(url, name, n):
        store = await Store.open(url)
        actor = audit.Actor(audit.ActorKind.SYSTEM, name)
        now = lambda: datetime.now(UTC)
        for i in range(n):
            if i % 2:
                await audit.record(store, actor, "test.standalone", at=now(), details={"i": i})
            else:
                async def work(conn, i=i):
                    await audit.append(conn, actor, "test.pipeline", at=now(), details={"i": i})
                await store.write(work)
                await audit.AuditSealer(store, clock=now).seal_now()
        await store.close()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


@pytest.mark.postgres
async def test_concurrent_appenders_in_several_processes_form_one_chain(postgres_url: str) -> None:
    per_process, processes = 40, 4
    async with open_store(postgres_url) as store:
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                APPENDER,
                postgres_url,
                f"proc-{p}",
                str(per_process),
                cwd=REPO,
            )
            for p in range(processes)
        ]

        # and in this process, many connections appending and sealing at once
        async def one(i: int) -> None:
            await audit.record(store, CLIENT, "test.local", at=T0, details={"i": i})

        await asyncio.gather(*(one(i) for i in range(40)))
        codes = [await proc.wait() for proc in procs]
        assert codes == [0] * processes
        await audit.AuditSealer(store, clock=lambda: T0).seal_now()
        report = await verify(store, now=T0)
        async with store.read() as conn:
            count = await conn.scalar(text("SELECT count(DISTINCT actor_name) FROM audit_log"))
    assert report.ok, report.broken
    assert report.entries == per_process * processes + 40
    assert report.pending == 0
    assert count == processes + 1
