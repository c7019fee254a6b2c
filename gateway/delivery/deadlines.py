"""Receipt deadlines: a dispatched disclosure whose receipt is overdue is sent again, then failed.

The resend is the SAME envelope (same bytes, same `jti`, same message id) made due again in the
outbox, so a partner that did receive it recognises the duplicate and only has to answer.
After `resend_limit` resends without a receipt the disclosure is `failed` with
`receipt_overdue` (replayable). A disclosure MESH reports as acknowledged by the recipient has a
transport receipt and is not chased: a resend could not help, MESH deduplicates by local id.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from agreements.model import DEFAULT_RECEIPT_DEADLINES, channel_target
from gateway.policy_cache import PolicyCache
from gateway.store import delivery_records
from gateway.store.database import Store
from gateway.store.disclosure_model import Status
from gateway.store.unit_of_work import Connection

log = structlog.get_logger("gateway.delivery.deadlines")

RESEND_EVENT = "resend"
RECEIPT_OVERDUE = "receipt_overdue"
TRANSPORT_ACKNOWLEDGED = "transport_acknowledged"


async def acknowledge_transport(
    store: Store, disclosure_id: str, *, at: datetime, detail: Mapping[str, str]
) -> bool:
    """Record, once and only while `dispatched`, that the partner's system took the message
    (a MESH acknowledgement, a signed MDN); True if recorded now. Not a receipt."""

    async def work(conn: Connection) -> bool:
        if await delivery_records.current_status(conn, disclosure_id) is not Status.DISPATCHED:
            return False
        if await delivery_records.count_events(conn, disclosure_id, TRANSPORT_ACKNOWLEDGED):
            return False
        await delivery_records.add_event(
            conn, disclosure_id, TRANSPORT_ACKNOWLEDGED, at=at, detail=dict(detail)
        )
        return True

    return await store.write(work)


@dataclass(slots=True)
class DeadlineReport:
    """What one scan did."""

    resent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class ReceiptDeadlines:
    """Finds dispatched disclosures past their agreement's receipt deadline and acts on them."""

    def __init__(
        self,
        *,
        store: Store,
        policy: PolicyCache,
        clock: Callable[[], datetime],
        resend_limit: int = 3,
        batch: int = 500,
        on_resend: Callable[[], None] = lambda: None,
    ) -> None:
        self.store, self.policy, self.clock = store, policy, clock
        self.resend_limit, self.batch, self.on_resend = resend_limit, batch, on_resend

    def deadline(self, agreement_id: str) -> timedelta | None:
        """The receipt deadline of an agreement as the channel target states it."""
        snapshot = self.policy.snapshot
        agreement = snapshot.agreements.get(agreement_id)
        if agreement is None or agreement.partner not in snapshot.partners:
            return None
        target = channel_target(snapshot.partners[agreement.partner], agreement)
        return timedelta(seconds=int(target["receipt_deadline_seconds"]))

    def _shortest(self) -> timedelta:
        known = [self.deadline(a) for a in self.policy.snapshot.agreements]
        found = [d for d in known if d is not None]
        return min(found, default=min(DEFAULT_RECEIPT_DEADLINES.values()))

    async def scan_once(self) -> DeadlineReport:
        """One pass over the oldest dispatched disclosures that could be overdue."""
        now = self.clock()
        report = DeadlineReport()
        async with self.store.read() as conn:
            rows = await delivery_records.dispatched_since(
                conn, before=now - self._shortest(), limit=self.batch
            )
            acknowledged = await delivery_records.with_event(
                conn, [r.disclosure_id for r in rows], TRANSPORT_ACKNOWLEDGED
            )
        for row in rows:
            deadline = self.deadline(row.agreement_id)
            if deadline is None or row.disclosure_id in acknowledged or row.since + deadline > now:
                continue
            await self._overdue(row.disclosure_id, now, report)
        if report.resent:
            self.on_resend()
        return report

    async def _overdue(self, id_: str, now: datetime, report: DeadlineReport) -> None:
        async def work(conn: Connection) -> tuple[str | None, int]:
            resends = await delivery_records.count_events(conn, id_, RESEND_EVENT)
            if resends < self.resend_limit:
                moved = await delivery_records.move(
                    conn,
                    id_,
                    Status.QUEUED,
                    event_type=RESEND_EVENT,
                    at=now,
                    detail={"reason": "receipt_deadline_passed", "resend": resends + 1},
                )
                if not moved:
                    return None, resends
                if await delivery_records.reschedule(
                    conn, id_, available_at=now, reset_attempts=True
                ):
                    return "resent", resends
                # The envelope is gone (purged): nothing can be sent again.
            failed = await delivery_records.fail(
                conn, id_, reason=RECEIPT_OVERDUE, at=now, attempts=None
            )
            return ("failed" if failed else None), resends

        outcome, resends = await self.store.write(work)
        if outcome == "resent":
            report.resent.append(id_)
            log.info("receipt_overdue_resend", disclosure_id=id_, resend=resends + 1)
        elif outcome == "failed":
            report.failed.append(id_)
            log.warning("receipt_overdue", disclosure_id=id_, resends=resends)
