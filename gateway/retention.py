"""Retention: destroy envelopes and held records past `retain_until`, then old disclosure records.

Two stages, each in small batches with one short transaction per batch, so it can run while the
service is live: (1) for receipted or failed disclosures past their agreement's `retain_until`,
delete the outbox envelope and any held record and stamp `envelope_purged_at`; (2) delete the
disclosure record itself (with its events, receipts and approvals) once it is past the later of
its `retain_until` and the council's records schedule, so "who has my data" can be answered for
as long as the recipient may hold the data; an Article 19 notice's record goes with its delivery
record, and one never sent goes on the same terms (3). Every purge is audited, one entry each;
the audit log itself is never purged. On PostgreSQL batches lock their rows with SKIP LOCKED,
so a concurrent run or a worker holding a row is stepped around, never waited on or doubled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gateway import audit
from gateway.store import retention_rows
from gateway.store.database import Store
from gateway.store.unit_of_work import Connection

IDEMPOTENCY_TTL = timedelta(days=1)
BATCH = 500
Due = Callable[[Connection, int | None], Awaitable[list[str]]]
Purge = Callable[[Connection, Sequence[str]], Awaitable[None]]


@dataclass(slots=True)
class RetentionReport:
    """What a run purged (or, with dry_run, would purge): disclosure ids and counts.

    `metadata_deleted` holds the disclosure records deleted; `records_kept_past_schedule` counts
    the records older than the schedule that stay because their `retain_until` is later.
    """

    dry_run: bool
    now: datetime
    records_schedule: timedelta
    envelopes_purged: list[str] = field(default_factory=list)
    metadata_deleted: list[str] = field(default_factory=list)
    unsent_notices_deleted: list[str] = field(default_factory=list)
    records_kept_past_schedule: int = 0
    idempotency_keys_deleted: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for `--json` (times ISO 8601, the schedule in days)."""
        data = asdict(self)
        data["now"] = self.now.isoformat()
        data["records_schedule_days"] = self.records_schedule.days
        del data["records_schedule"]
        return data


async def run(
    store: Store,
    *,
    now: datetime,
    records_retention: timedelta,
    actor: audit.Actor = audit.SYSTEM,
    dry_run: bool = False,
    batch: int = BATCH,
) -> RetentionReport:
    """Purge what is due at `now`; returns what was (or would be) purged."""
    report = RetentionReport(dry_run=dry_run, now=now, records_schedule=records_retention)
    cutoff = now - records_retention

    async def envelopes(conn: Connection, limit: int | None) -> list[str]:
        return await retention_rows.envelopes_due(conn, now, limit)

    async def metadata(conn: Connection, limit: int | None) -> list[str]:
        return await retention_rows.metadata_due(conn, now=now, cutoff=cutoff, limit=limit)

    async def unsent_notices(conn: Connection, limit: int | None) -> list[str]:
        return await retention_rows.unsent_notices_due(conn, now=now, cutoff=cutoff, limit=limit)

    async def purge(conn: Connection, ids: Sequence[str]) -> None:
        await retention_rows.purge_envelopes(conn, ids, now)

    if dry_run:
        async with store.read() as conn:
            report.envelopes_purged = await envelopes(conn, None)
            report.metadata_deleted = await metadata(conn, None)
            report.unsent_notices_deleted = await unsent_notices(conn, None)
            report.records_kept_past_schedule = await retention_rows.kept_past_schedule(
                conn, now=now, cutoff=cutoff
            )
        return report
    stages: list[tuple[Due, Purge, str, str, list[str]]] = [
        (envelopes, purge, "retention.envelope_purged", "disclosure", report.envelopes_purged),
        (
            metadata,
            retention_rows.delete_metadata,
            "retention.metadata_deleted",
            "disclosure",
            report.metadata_deleted,
        ),
        (
            unsent_notices,
            retention_rows.delete_notices,
            "retention.notice_deleted",
            "notice",
            report.unsent_notices_deleted,
        ),
    ]
    for due, action, audited, target, done in stages:
        while ids := await _batch(
            store, due, action, (audited, target), batch, now=now, actor=actor
        ):
            done.extend(ids)

    async def forget_keys(conn: Connection) -> int:
        return await retention_rows.delete_idempotency_keys(conn, now - IDEMPOTENCY_TTL)

    report.idempotency_keys_deleted = await store.write(forget_keys)
    async with store.read() as conn:
        report.records_kept_past_schedule = await retention_rows.kept_past_schedule(
            conn, now=now, cutoff=cutoff
        )
    return report


async def _batch(
    store: Store,
    due: Due,
    action: Purge,
    audited: tuple[str, str],
    size: int,
    *,
    now: datetime,
    actor: audit.Actor,
) -> list[str]:
    """One batch in one short unit of work, each purge audited."""

    async def work(conn: Connection) -> list[str]:
        ids = await due(conn, size)
        if ids:
            await action(conn, ids)
            name, target = audited
            entries: list[audit.PendingEntry] = [(actor, name, {target: i}, {}) for i in ids]
            await audit.append_many(conn, entries, at=now)
        return ids

    return await store.write(work)
