"""The audit chain: appends, sealing, checkpoints, and verify catching every kind of tampering."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.engine import Connection

from gateway import audit
from gateway.audit_verify import verify
from gateway.store.database import Store
from gateway.store.tables import audit_checkpoints, audit_head, audit_log
from tests.integration.store_support import ADMIN, CLIENT, T0, checkpoint_keys, open_store

REPO = str(Path(__file__).resolve().parents[2])
N = 12  # entries per test chain; checkpoints every 5 -> at 5 and 10, tail 11..12 unsigned


async def build_chain(
    store: Store, signer: audit.CheckpointSigner, n: int = N, every: int = 5
) -> None:
    """Append n entries in separate transactions, sealing with checkpoints every `every`."""
    for i in range(n):
        async with store.transaction() as conn:
            await audit.append(
                conn,
                CLIENT,
                "disclosure.accepted",
                at=T0 + timedelta(seconds=i),
                targets={"disclosure": f"d-{i}"},
                details={"fields_sent": ["person.name"], "n": i},
            )
        async with store.transaction() as conn:
            await audit.seal(
                conn, at=T0 + timedelta(seconds=i), signer=signer, checkpoint_every=every
            )


async def test_a_sealed_chain_verifies(database_url: str) -> None:
    async with open_store(database_url) as store:
        signer, verifier = checkpoint_keys()
        for i in range(N):
            async with store.transaction() as conn:
                await audit.append(conn, CLIENT, "x.done", at=T0, details={"n": i})
                await audit.seal(conn, at=T0, signer=signer, checkpoint_every=5)
        report = await verify(store, verifier)
    assert report.ok, report.broken
    assert (report.entries, report.head_seq, report.checkpoints) == (N, N, 2)
    assert report.last_checkpoint_seq == 10
    assert report.signatures_checked


async def test_pending_entries_are_reported_until_sealed(database_url: str) -> None:
    async with open_store(database_url) as store:
        async with store.transaction() as conn:
            await audit.append(conn, CLIENT, "disclosure.denied", at=T0)
        before = await verify(store)
        sealer = audit.AuditSealer(store, clock=lambda: T0)
        assert await sealer.seal_now() == 1
        after = await verify(store)
    assert (before.pending, before.entries, before.oldest_pending_at) == (1, 0, T0)
    assert (after.pending, after.entries) == (0, 1)


async def test_a_sealer_that_delegates_steps_in_when_work_is_left_waiting(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While another process is meant to seal, this one still seals what it leaves overdue."""
    monkeypatch.setattr(audit, "OVERDUE_CHECK_SECONDS", 0.05)
    monkeypatch.setattr(audit, "OVERDUE_SECONDS", 0.3)
    async with open_store(database_url) as store:
        async with store.transaction() as conn:  # staged (pending), for a sealer to chain
            await audit.append(conn, CLIENT, "disclosure.denied", at=T0)
        sealer = audit.AuditSealer(store, clock=lambda: T0 + timedelta(seconds=1), interval=0.02)
        sealer.delegated = lambda: True  # the other process never does it
        sealer.start()
        try:
            for _ in range(100):
                if not (await verify(store)).pending:
                    break
                await asyncio.sleep(0.05)
            running = await verify(store)  # before stop(), which seals whatever is left
        finally:
            await sealer.stop()
    assert (running.pending, running.entries, running.ok) == (0, 1, True)


async def test_a_sealer_that_delegates_leaves_fresh_work_to_the_other_process(
    database_url: str,
) -> None:
    async with open_store(database_url) as store:
        async with store.transaction() as conn:
            await audit.append(conn, CLIENT, "disclosure.denied", at=T0)
        sealer = audit.AuditSealer(store, clock=lambda: T0, interval=0.02)  # not overdue
        sealer.delegated = lambda: True
        sealer.start()
        await asyncio.sleep(audit.OVERDUE_CHECK_SECONDS + 0.3)  # past a check
        assert (await verify(store)).pending == 1
        sealer.delegated = None
        await sealer.stop()  # still seals on the way out
        assert (await verify(store)).pending == 0


def _append_each(conn: Connection, items: Sequence[str]) -> list[None]:
    rows = [audit.pending_row(CLIENT, action, at=T0) for action in items]
    audit.append_rows_sync(conn, rows)
    return [None] * len(items)


async def test_sqlite_writer_chains_entries_in_the_transaction_that_appends_them(
    database_url: str,
) -> None:
    async with open_store(database_url) as store:
        await asyncio.gather(
            *(store.submit_sync(_append_each, a) for a in ("disclosure.denied", "x.done"))
        )
        report = await verify(store)
    assert report.ok, report.broken
    inline = database_url.startswith("sqlite")  # PostgreSQL stages them for the sealer
    assert (report.pending, report.entries) == ((0, 2) if inline else (2, 0))


async def test_pending_and_inline_entries_form_one_chain(sqlite_url: str) -> None:
    """Entries staged through aiosqlite and entries chained by the writer thread interleave."""
    async with open_store(sqlite_url) as store:
        async with store.transaction() as conn:
            await audit.append(conn, CLIENT, "disclosure.denied", at=T0, details={"n": 1})
        await store.submit_sync(_append_each, "disclosure.accepted")  # chained at once
        sealer = audit.AuditSealer(store, clock=lambda: T0)
        assert await sealer.seal_now() == 1
        report = await verify(store)
    assert report.ok, report.broken
    assert (report.pending, report.entries) == (0, 2)


async def test_checkpoints_are_signed_for_entries_chained_inline(database_url: str) -> None:
    """The writer thread chains without a signer; the sealer signs every checkpoint due."""
    signer, verifier = checkpoint_keys()
    async with open_store(database_url) as store:
        for i in range(N):
            await store.submit_sync(_append_each, f"x.done-{i}")
        async with store.transaction() as conn:
            await audit.seal(conn, at=T0, signer=signer, checkpoint_every=5)
        report = await verify(store, verifier)
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
        report = await verify(store, verifier)
    assert report.ok
    assert (report.checkpoints, report.last_checkpoint_seq) == (1, 3)


async def test_free_text_in_details_is_refused(sqlite_url: str) -> None:
    async with open_store(sqlite_url) as store, store.transaction() as conn:
        with pytest.raises(ValueError, match="too long"):
            await audit.append(conn, CLIENT, "x", at=T0, details={"note": "x" * 500})


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
    token = forger.sign_compact(audit.checkpoint_payload(5, row.hash, row.at))
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
        assert (await verify(store)).ok
        async with store.transaction() as conn:
            await tamper(conn)
        report = await verify(store, verifier)
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
                async with store.transaction() as conn:
                    await audit.append(conn, actor, "test.pipeline", at=now(), details={"i": i})
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
        report = await verify(store)
        async with store.read() as conn:
            count = await conn.scalar(text("SELECT count(DISTINCT actor_name) FROM audit_log"))
    assert report.ok, report.broken
    assert report.entries == per_process * processes + 40
    assert report.pending == 0
    assert count == processes + 1
