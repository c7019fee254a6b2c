"""Retention purges exactly what is due, audits it, and leaves everything else alone."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import func, select

from agreements.loader import default_catalog_dir, load_catalog
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
        dry = await retention.run(store, now=now, records_retention=SIX_YEARS, dry_run=True)
        async with store.read() as conn:
            assert await conn.scalar(select(func.count()).select_from(outbox_table)) == 4
        report = await retention.run(store, now=now, records_retention=SIX_YEARS)
        again = await retention.run(store, now=now, records_retention=SIX_YEARS)
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
        report = await retention.run(store, now=later, records_retention=SIX_YEARS)
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


async def test_records_outlive_the_schedule_while_the_recipient_keeps_the_data(
    database_url: str, tmp_path: Path
) -> None:
    """Bexley keeps a placement record 75 years, the DfE 50, a GP 8: the record stays as long."""
    catalog = load_catalog(default_catalog_dir())
    prot = protection(tmp_path)
    ids: dict[str, str] = {}
    async with open_store(database_url) as store:
        for agreement_id in ("KM-LA-PLC-010", "KM-DFE-CIN-013", "KM-GP-005", "KM-KCC-OOH-009"):
            agreement = catalog.agreements[agreement_id]
            until = agreement.retain_until(T0.date())
            new = new_disclosure(
                prot,
                retain_until=datetime.combine(until, time(), tzinfo=UTC),
                partner=agreement.partner,
            )
            ids[agreement_id] = new.id
            status = Status.RECEIPTED
            await store.write(functools.partial(_accepted_then, new=new, status=status))

        async def travel_to(years: int) -> tuple[retention.RetentionReport, set[str]]:
            now = T0 + years * YEAR + timedelta(days=60)  # past leap days too
            dry = await retention.run(store, now=now, records_retention=SIX_YEARS, dry_run=True)
            done = await retention.run(store, now=now, records_retention=SIX_YEARS)
            assert (done.envelopes_purged, done.metadata_deleted) == (
                dry.envelopes_purged,
                dry.metadata_deleted,
            )
            async with store.read() as conn:
                left = {
                    d.id for d in await conn.run_sync(disclosures.get_many, list(ids.values())) if d
                }
            return dry, left

        six, left_at_six = await travel_to(6)
        eight, left_at_eight = await travel_to(8)
        fifty, left_at_fifty = await travel_to(50)
        seventy_five, left_at_end = await travel_to(75)

    one_year, gp, dfe, bexley = (
        ids[a] for a in ("KM-KCC-OOH-009", "KM-GP-005", "KM-DFE-CIN-013", "KM-LA-PLC-010")
    )
    # Past the six-year schedule: only the one-year record goes; three are kept for retain_until.
    assert (six.envelopes_purged, six.metadata_deleted) == ([one_year], [one_year])
    assert six.records_kept_past_schedule == 3
    assert left_at_six == {gp, dfe, bexley}
    # The envelope goes at retain_until, and with it the record already past the schedule.
    assert (eight.envelopes_purged, eight.metadata_deleted) == ([gp], [gp])
    assert left_at_eight == {dfe, bexley}
    assert (fifty.envelopes_purged, fifty.metadata_deleted) == ([dfe], [dfe])
    assert left_at_fifty == {bexley}
    assert (seventy_five.envelopes_purged, seventy_five.metadata_deleted) == ([bexley], [bexley])
    assert seventy_five.records_kept_past_schedule == 0
    assert left_at_end == set()


async def test_a_long_schedule_keeps_records_after_their_envelopes(
    database_url: str, tmp_path: Path
) -> None:
    prot = protection(tmp_path)
    async with open_store(database_url) as store:
        new = new_disclosure(prot, retain_until=T0 + YEAR)
        await store.write(functools.partial(_accepted_then, new=new, status=Status.RECEIPTED))
        now = T0 + 2 * YEAR
        report = await retention.run(store, now=now, records_retention=SIX_YEARS)
        async with store.read() as conn:
            kept = await disclosures.get(conn, new.id)
    assert report.envelopes_purged == [new.id]
    assert report.metadata_deleted == []
    assert kept is not None
    assert kept.envelope_purged_at == now
