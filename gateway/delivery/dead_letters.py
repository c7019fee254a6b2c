"""Dead letters: failed disclosures whose envelope is still held, listed and replayed.

The database is the authority in both modes: a dead letter is a `failed` disclosure with its
envelope in the outbox. A replay moves it `failed -> queued` (event and audit entry naming the
administrator) and makes the SAME envelope due again. On RabbitMQ the copy parked in the
partner's dead-letter queue is moved back to the partner's queue; where there is none (a
receipt deadline, a rejected receipt, a queue purged by hand) the relay publishes the outbox row.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from gateway import audit
from gateway.partner_keys import sealed_key_refusal
from gateway.queue.messages import ReplayReport
from gateway.store import delivery_records, partners_repo
from gateway.store.database import Store
from gateway.store.disclosure_model import Status
from gateway.store.sealed_rows import KEY_REVOKED_EVENT
from gateway.store.unit_of_work import Connection

FAILURE_EVENTS = ("failed", "receipt_rejected", KEY_REVOKED_EVENT)
REPLAY_GRACE = timedelta(seconds=60)
"""On RabbitMQ, how long the relay leaves a replayed row alone while its parked copy moves."""


class DeadLetterQueues(Protocol):
    """The broker's dead-letter queues (RabbitTransport implements this)."""

    async def replay_dead_letters(
        self, partner: str, message_ids: Collection[str] | None = None, *, limit: int = ...
    ) -> ReplayReport:
        """Move parked messages back to the partner's queue."""
        ...


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    """One failed disclosure that can be replayed."""

    disclosure_id: str
    partner_id: str
    agreement_id: str
    reason: str | None
    attempts: int
    failed_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "disclosure_id": self.disclosure_id,
            "partner": self.partner_id,
            "agreement": self.agreement_id,
            "reason": self.reason,
            "attempts": self.attempts,
            "failed_at": self.failed_at.isoformat(),
        }


@dataclass(slots=True)
class ReplayResult:
    """Which disclosures were replayed (and how), and which were refused with a code."""

    from_broker: list[str] = field(default_factory=list)
    from_outbox: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)

    @property
    def replayed(self) -> list[str]:
        """Every replayed disclosure id."""
        return self.from_broker + self.from_outbox

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "replayed": self.replayed,
            "from_dead_letter_queue": self.from_broker,
            "from_outbox": self.from_outbox,
            "refused": self.refused,
        }


async def list_dead_letters(
    store: Store, *, partner: str | None = None, limit: int = 1000
) -> list[FailedDelivery]:
    """Failed disclosures with their envelope still in the outbox, oldest failure first."""
    async with store.read() as conn:
        rows = await delivery_records.failed_with_envelope(conn, partner=partner, limit=limit)
        reasons = await delivery_records.latest_failure_reasons(
            conn, [r.disclosure_id for r in rows], FAILURE_EVENTS
        )
    return [
        FailedDelivery(
            r.disclosure_id,
            r.partner_id,
            r.agreement_id,
            reasons.get(r.disclosure_id),
            r.attempts,
            r.failed_at,
        )
        for r in rows
    ]


async def replay(
    store: Store,
    *,
    actor: audit.Actor,
    clock: Callable[[], datetime],
    ids: Sequence[str] | None = None,
    partner: str | None = None,
    broker: DeadLetterQueues | None = None,
) -> ReplayResult:
    """Replay these dead letters (or all of a partner's): queued again, the same envelope."""
    result = ReplayResult()
    if ids is None:
        ids = [d.disclosure_id for d in await list_dead_letters(store, partner=partner)]
    now = clock()
    due = now + REPLAY_GRACE if broker is not None else now

    async def work(conn: Connection) -> tuple[dict[str, str], dict[str, list[str]]]:
        refused: dict[str, str] = {}
        partners: dict[str, list[str]] = {}
        for id_ in dict.fromkeys(ids):
            row = await delivery_records.replay_state(conn, id_)
            if row is None:
                refused[id_] = "not_found"
            elif row.status is not Status.FAILED:
                refused[id_] = "not_failed"
            elif not row.has_envelope:
                refused[id_] = "envelope_purged"
            elif refusal := await _sealed_key_refusal(conn, row, now):
                refused[id_] = refusal  # never sent: resubmitted by the source, sealed afresh
            else:
                await delivery_records.move(
                    conn,
                    id_,
                    Status.QUEUED,
                    event_type="replayed",
                    at=now,
                    actor=actor,
                    detail={"by": actor.name},
                    changes={"attempts": 0, "next_attempt_at": None},
                )
                await delivery_records.reschedule(conn, id_, available_at=due, reset_attempts=True)
                partners.setdefault(row.partner_id, []).append(id_)
        await audit.seal(conn, at=now)  # chained now: an admin's CLI runs no sealer
        return refused, partners

    result.refused, partners = await store.write(work)
    if broker is None:
        result.from_outbox = [i for group in partners.values() for i in group]
        return result
    for partner_id, group in partners.items():
        report = await broker.replay_dead_letters(partner_id, group)
        moved = set(report.replayed)
        result.from_broker += [i for i in group if i in moved]
        result.from_outbox += [i for i in group if i not in moved]
    await _settle_outbox(store, result, clock())
    return result


async def _sealed_key_refusal(
    conn: Connection, row: delivery_records.ReplayState, now: datetime
) -> str | None:
    """`partner_key_revoked` (or `partner_key_retired`) when the envelope may not be sent."""
    keys = await partners_repo.keys_of(conn, row.partner_id)
    return sealed_key_refusal(keys, row.partner_id, row.key_ids, now)


async def _settle_outbox(store: Store, result: ReplayResult, now: datetime) -> None:
    """Rows whose parked copy moved are published; the others are due for the relay now."""

    async def work(conn: Connection) -> None:
        await delivery_records.settle_replayed(
            conn, published=result.from_broker, due=result.from_outbox, at=now
        )

    await store.write(work)
