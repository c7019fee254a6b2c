"""Reconcile dead letters with the database: no disclosure stays `queued` once delivery gave up.

A delivery that gave up without recording it (earlier versions did, when a handler raised; the
broker still does after `x-delivery-limit` crash redeliveries) leaves a disclosure `queued`
that nothing will deliver, invisible to `deadletters list`. The reconciler finds them:

- a copy parked in a partner's dead-letter queue, or an outbox row `dead`: recorded `failed`
  with `dead_lettered_unrecorded` (the parked reason as `last_reason`), so it is listed and
  replayable; a parked copy older than the disclosure's last replay is left alone (it is
  stale, the replay sent the envelope again);
- published to the broker with no attempt due for longer than `quiet_after`: the same envelope
  is made due again (event `requeued`), since its message may be lost; a copy still on its way
  is recognised by its message id.

Run by `gateway-admin deadletters reconcile`, and by every worker at start and periodically.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from gateway import audit
from gateway.application.admin_ports import StorePort
from gateway.queue.messages import ParkedLetter
from gateway.store import delivery_records, stranded_rows
from gateway.store.unit_of_work import Connection

log = structlog.get_logger("gateway.delivery.reconcile")

DEAD_LETTERED_UNRECORDED = "dead_lettered_unrecorded"
REQUEUED_EVENT = "requeued"
QUIET_AFTER = timedelta(hours=2)
"""Longer than any retry delay a policy uses (an hour by default) plus a busy queue's backlog."""


class ParkedLetters(Protocol):
    """The broker's dead-letter queues, looked into (RabbitTransport implements this)."""

    async def parked_letters(self, *, limit: int = ...) -> list[ParkedLetter]:
        """Every partner's dead letters, left in place."""
        ...


@dataclass(slots=True)
class ReconcileReport:
    """What a reconciliation repaired: failed (id -> last reason), requeued ids."""

    failed: dict[str, str | None] = field(default_factory=dict)
    requeued: list[str] = field(default_factory=list)
    parked_seen: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "failed": [{"disclosure_id": i, "last_reason": r} for i, r in self.failed.items()],
            "requeued": self.requeued,
            "parked_seen": self.parked_seen,
        }


async def reconcile_dead_letters(
    store: StorePort,
    *,
    clock: Callable[[], datetime],
    broker: ParkedLetters | None = None,
    quiet_after: timedelta | None = QUIET_AFTER,
    limit: int = 10_000,
) -> ReconcileReport:
    """Record `failed` for every stranded dead letter and requeue quiet published envelopes."""
    parked: Sequence[ParkedLetter] = await broker.parked_letters(limit=limit) if broker else ()
    by_id = {p.message_id: p for p in parked if p.message_id}
    now = clock()

    async def work(conn: Connection) -> ReconcileReport:
        found = ReconcileReport(parked_seen=len(parked))
        stranded = dict.fromkeys(await stranded_rows.dead_but_queued(conn, limit=limit))
        queued = await stranded_rows.still_queued(conn, by_id)
        replays = await stranded_rows.replay_counts(conn, queued)
        for id_ in queued:
            # Replayed since this copy was parked (perhaps while we looked): the copy is stale.
            if replays.get(id_, 0) <= by_id[id_].replays:
                stranded[id_] = by_id[id_].reason
        for id_, last_reason in stranded.items():
            if await delivery_records.fail(
                conn, id_, reason=DEAD_LETTERED_UNRECORDED, at=now, last_reason=last_reason
            ):
                found.failed[id_] = last_reason
        if quiet_after is not None:
            quiet = await stranded_rows.published_and_quiet(
                conn, before=now - quiet_after, limit=limit
            )
            for id_ in quiet:
                if id_ in stranded:
                    continue
                await delivery_records.add_event(
                    conn,
                    id_,
                    REQUEUED_EVENT,
                    at=now,
                    detail={"reason": "no_attempt_due"},
                    changes={"next_attempt_at": None},
                )
                await delivery_records.reschedule(conn, id_, available_at=now)
                found.requeued.append(id_)
        await audit.seal(conn, at=now)  # chained now: an admin's CLI runs no sealer
        return found

    report = await store.write(work)
    if report.failed or report.requeued:
        log.warning(
            "dead_letters_reconciled", failed=len(report.failed), requeued=len(report.requeued)
        )
    return report
