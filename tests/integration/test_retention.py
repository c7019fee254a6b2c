"""Retention purges exactly what is due, audits it, and leaves everything else alone."""

from __future__ import annotations

import functools
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from gateway import retention
from gateway.audit import AuditSealer
from gateway.audit_verify import verify
from gateway.store import disclosures, outbox
from gateway.store.database import Store
from gateway.store.disclosure_model import NewDisclosure, Status
from gateway.store.tables import audit_log, held_records
from gateway.store.tables import outbox as outbox_table
from gateway.store.unit_of_work import Connection
from tests.integration.store_support import (
    CLIENT,
    T0,
    new_disclosure,
    open_store,
    protection,
)

YEAR = timedelta(days=365)
SIX_YEARS = 6 * YEAR


async def seed(store: Store, tmp_path: Path) -> dict[str, str]:
    """One disclosure in each situation retention must tell apart."""
    prot = protection(tmp_path)
    ids: dict[str, str] = {}
    cases = {
        "receipted_due": (T0 + timedelta(days=30), Status.RECEIPTED),
        "failed_due": (T0 + timedelta(days=30), Status.FAILED),
        "receipted_not_due": (T0 + 2 * YEAR, Status.RECEIPTED),
        "queued_due": (T0 + timedelta(days=30), Status.QUEUED),  # still in flight: keep
    }
    for name, (retain_until, status) in cases.items():
        new = new_disclosure(prot, retain_until=retain_until)
        ids[name] = new.id
        await store.write(functools.partial(_accepted_then, new=new, status=status))
    held = new_disclosure(prot, retain_until=T0 + timedelta(days=1))
    ids["held"] = held.id
    await store.write(
        lambda conn: disclosures.record_held(
            conn, held, request=b"{}", protection=prot, actor=CLIENT, at=T0
        )
    )
    return ids


async def _accepted_then(conn: Connection, *, new: NewDisclosure, status: Status) -> None:
    """Record `new` as accepted, then move it to `status` in the same transaction."""
    await disclosures.record_accepted(conn, new, envelope=b"jwe", digest="d", actor=CLIENT, at=T0)
    if status is not Status.QUEUED:
        await disclosures.transition(
            conn, new.id, status, event_type=str(status), actor=CLIENT, at=T0
        )


async def test_retention_purges_exactly_what_is_due(database_url: str, tmp_path: Path) -> None:
    now = T0 + 90 * timedelta(days=1)
    async with open_store(database_url) as store:
        ids = await seed(store, tmp_path)
        dry = await retention.run(store, now=now, metadata_retention=SIX_YEARS, dry_run=True)
        async with store.read() as conn:
            assert await conn.scalar(select(func.count()).select_from(outbox_table)) == 4
        report = await retention.run(store, now=now, metadata_retention=SIX_YEARS)
        again = await retention.run(store, now=now, metadata_retention=SIX_YEARS)
        await AuditSealer(store, clock=lambda: now).seal_now()
        async with store.read() as conn:
            left = {r.disclosure_id for r in await conn.execute(select(outbox_table))}
            purged = await disclosures.get(conn, ids["receipted_due"])
            actions = [
                (r.action, r.targets)
                for r in await conn.execute(
                    select(audit_log).where(audit_log.c.action.like("retention.%"))
                )
            ]
            held_left = await conn.scalar(select(func.count()).select_from(held_records))
        chain = await verify(store, now=T0)
    due = {ids["receipted_due"], ids["failed_due"]}
    assert set(dry.envelopes_purged) == due
    assert set(report.envelopes_purged) == due
    assert again.envelopes_purged == []
    assert left == {ids["receipted_not_due"], ids["queued_due"]}
    assert purged is not None
    assert purged.envelope_purged_at == now  # the metadata row stays for the records schedule
    assert report.metadata_deleted == []
    assert held_left == 1  # pending approval is not receipted or failed: kept
    assert sorted(a for a, _ in actions) == ["retention.envelope_purged"] * 2
    assert chain.ok


async def test_metadata_goes_after_the_records_schedule(database_url: str, tmp_path: Path) -> None:
    async with open_store(database_url) as store:
        ids = await seed(store, tmp_path)
        later = T0 + SIX_YEARS + timedelta(days=1)
        report = await retention.run(store, now=later, metadata_retention=SIX_YEARS)
        async with store.read() as conn:
            gone = await disclosures.get(conn, ids["receipted_due"])
            kept = await disclosures.get(conn, ids["queued_due"])
            events = await disclosures.timeline(conn, ids["failed_due"])
            assert await outbox.requeue(conn, ids["failed_due"], now=later) is False
    assert set(report.metadata_deleted) == {
        ids["receipted_due"],
        ids["failed_due"],
        ids["receipted_not_due"],
    }
    assert gone is None
    assert kept is not None
    assert events == []
