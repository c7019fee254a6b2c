"""Whole disclosures persisted per second (disclosure + event + outbox + audit, one transaction).

Runs on SQLite (a temporary file) and on PostgreSQL (a database it creates and drops), with 1,
16 and 64 concurrent writers through `Store.write`, while the audit sealer chains entries in the
background as it would in the service. The single writer is the baseline of one transaction per
disclosure: it writes one disclosure per `Store.write` call and waits for it, so each commit
holds one disclosure; 16 and 64 writers share commits. Afterwards it drains the sealer, verifies
the whole chain, and prints the figures.

    .venv/bin/python benchmarks/bench_store.py [--seconds 3] [--skip-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.audit import Actor, ActorKind, AuditSealer
from gateway.audit_verify import verify
from gateway.background import Loops
from gateway.protection import Protection
from gateway.store import disclosures
from gateway.store.database import Store
from gateway.store.dialects import DatabaseOptions
from gateway.store.disclosure_model import NewDisclosure, SubjectIndexes
from gateway.store.group_commit import SetWise

PG = os.environ.get("GATEHOUSE_BENCH_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
ACTOR = Actor(ActorKind.CLIENT, "bench")
ENVELOPE = os.urandom(3000)  # about the size of a sealed, minimised record


def now() -> datetime:
    return datetime.now(UTC)


def disclosure(prot: Protection, n: int) -> NewDisclosure:
    return NewDisclosure(
        id=str(uuid.uuid4()),
        client="bench-client",
        agreement_id="isa-bench",
        agreement_version=1,
        partner_id="bench-partner",
        purpose="direct_care",
        lawful_basis="6(1)(e); 9(2)(h)",
        subject=SubjectIndexes.of(prot, nhs_number=f"999{n:07d}", local_id=f"SYN-{n}"),
        requested_by_user="bench.user",
        requested_by_role="social_worker",
        reason="benchmark",
        retain_until=now() + timedelta(days=30),
        fields_sent=("person.name", "person.date_of_birth", "needs.personal_care"),
        fields_removed=("health.diagnoses",),
        decision_reasons=("allowed",),
        key_ids=("council-sig-1", "partner-enc-1"),
    )


async def writer(store: Store, prot: Protection, deadline: float, counter: list[int]) -> None:
    """As submitting persists: one disclosure per `Store.write`, waiting for its commit."""
    while time.perf_counter() < deadline:
        new = disclosure(prot, counter[0])
        accepted = disclosures.AcceptedDisclosure(new, ENVELOPE, "bench", ACTOR, now())
        await store.write(SetWise(disclosures.record_accepted_setwise, accepted))
        counter[0] += 1


async def run(url: str, writers: int, seconds: float, prot: Protection) -> None:
    store = await Store.open(url, DatabaseOptions(pool_size=writers + 2))
    await store.upgrade()
    sealer = AuditSealer(store, clock=now)
    loops = Loops()
    loops.start("audit-sealer", 0.05, sealer.seal_if_due, failed="audit_seal_failed")
    counter = [0]
    cpu = time.process_time()
    start = time.perf_counter()
    deadline = start + seconds
    await asyncio.gather(*(writer(store, prot, deadline, counter) for _ in range(writers)))
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu  # this process, every thread (the driver's included)
    drain_start = time.perf_counter()
    await loops.stop()
    await sealer.seal_now()
    drain = time.perf_counter() - drain_start
    report = await verify(store, now=datetime.now(UTC))
    await store.close()
    rate = counter[0] / elapsed
    print(
        f"{store.dialect:10} writers={writers:2}"
        f"  {counter[0]:6} disclosures in {elapsed:4.1f}s"
        f"  = {rate:7.0f}/s, CPU {cpu / max(counter[0], 1) * 1e6:4.0f} µs each"
        f"   sealer backlog drained in {drain * 1000:5.0f} ms"
        f"   chain: {'ok' if report.ok else report.broken.code if report.broken else 'broken'}"
        f" entries={report.entries}"
    )


# One writer (one disclosure per commit: the baseline), then 16 and 64 sharing commits.
CASES = (1, 16, 64)


async def pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG.replace("postgresql+asyncpg", "postgresql") + "/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        prot = Protection.from_dir(Path(tmp) / "keys")
        for writers in CASES:
            url = f"sqlite+aiosqlite:///{tmp}/bench-{writers}.db"
            await run(url, writers, args.seconds, prot)
        if args.skip_postgres:
            return
        for writers in CASES:
            name = f"gh_bench_{uuid.uuid4().hex[:10]}"
            await pg_admin(f'CREATE DATABASE "{name}"')
            try:
                await run(f"{PG}/{name}", writers, args.seconds, prot)
            finally:
                await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
