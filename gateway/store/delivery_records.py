"""What the delivery engine writes: status moves (via `disclosures.transition`), delivery events
that are not status moves (a retry, a hold, a transport acknowledgement), and outbox states.

Every function runs inside the caller's transaction, so a status, its event, its audit entry and
the envelope's outbox state always change together. Details carry codes and numbers only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway import audit_entry
from gateway.errors import NotFoundError
from gateway.store import audit_log, disclosures
from gateway.store.database import require_transaction
from gateway.store.disclosure_model import Status
from gateway.store.tables import disclosure_events, outbox
from gateway.store.tables import disclosures as disclosure_rows

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
"""Outbox states the engine sets (`published` is the relay's)."""


async def current_status(conn: AsyncConnection, id_: str) -> Status | None:
    """The disclosure's status now, or None when it no longer exists."""
    value = await conn.scalar(select(disclosure_rows.c.status).where(disclosure_rows.c.id == id_))
    return Status(value) if value is not None else None


async def add_event(
    conn: AsyncConnection,
    id_: str,
    event_type: str,
    *,
    at: datetime,
    detail: Mapping[str, Any],
    actor: audit_entry.Actor = audit_entry.SYSTEM,
    changes: Mapping[str, Any] | None = None,
) -> None:
    """An event that does not move the status (retry, hold, transport receipt), audited."""
    require_transaction(conn)
    await conn.execute(
        insert(disclosure_events),
        {"disclosure_id": id_, "at": at, "type": event_type, "detail": dict(detail)},
    )
    if changes:
        await conn.execute(
            update(disclosure_rows).where(disclosure_rows.c.id == id_).values(dict(changes))
        )
    partner = await conn.scalar(
        select(disclosure_rows.c.partner_id).where(disclosure_rows.c.id == id_)
    )
    targets = {"disclosure": id_, "partner": str(partner)}
    await audit_log.append(
        conn, actor, f"disclosure.{event_type}", at=at, targets=targets, details=detail
    )


async def move(
    conn: AsyncConnection,
    id_: str,
    to: Status,
    *,
    event_type: str,
    at: datetime,
    detail: Mapping[str, Any],
    actor: audit_entry.Actor = audit_entry.SYSTEM,
    changes: Mapping[str, Any] | None = None,
) -> bool:
    """Transition when the status machine allows it now; False (and no write) when it does not.

    A worker may find the disclosure already receipted (a late duplicate) or already failed:
    that is not an error, there is just nothing left to record.
    """
    try:
        _before, moved = await disclosures.transition_if_allowed(
            conn,
            id_,
            to,
            event_type=event_type,
            actor=actor,
            at=at,
            detail=detail,
            changes=changes,
        )
    except NotFoundError:  # purged meanwhile: nothing left to record
        return False
    return moved


async def fail(
    conn: AsyncConnection,
    id_: str,
    *,
    reason: str,
    at: datetime,
    attempts: int | None = None,
    last_reason: str | None = None,
    actor: audit_entry.Actor = audit_entry.SYSTEM,
) -> bool:
    """`failed` with its reason, and the envelope dead-lettered in the outbox (replayable)."""
    detail: dict[str, Any] = {"reason": reason}
    changes: dict[str, Any] = {"next_attempt_at": None}
    if attempts is not None:
        detail["attempts"] = attempts
        changes["attempts"] = attempts
    if last_reason is not None and last_reason != reason:
        detail["last_reason"] = last_reason
    moved = await move(
        conn,
        id_,
        Status.FAILED,
        event_type="failed",
        at=at,
        detail=detail,
        actor=actor,
        changes=changes,
    )
    if moved:
        await set_outbox_state(conn, id_, DEAD)
    return moved


async def set_outbox_state(conn: AsyncConnection, id_: str, state: str) -> None:
    """Set the envelope's outbox state and drop any lease on it."""
    await conn.execute(
        update(outbox)
        .where(outbox.c.disclosure_id == id_)
        .values(state=state, lease_owner=None, lease_until=None)
    )


async def reschedule(
    conn: AsyncConnection, id_: str, *, available_at: datetime, reset_attempts: bool = False
) -> bool:
    """Make the envelope due again at `available_at` (a hold, a resend, a replay)."""
    values: dict[str, Any] = {
        "state": PENDING,
        "lease_owner": None,
        "lease_until": None,
        "available_at": available_at,
    }
    if reset_attempts:
        values["attempts"] = 0
    result = await conn.execute(update(outbox).where(outbox.c.disclosure_id == id_).values(values))
    return bool(result.rowcount)


async def refund_attempt(conn: AsyncConnection, id_: str) -> None:
    """A held envelope was claimed but not tried: its claim must not count as an attempt."""
    await conn.execute(
        update(outbox)
        .where(outbox.c.disclosure_id == id_, outbox.c.attempts > 0)
        .values(attempts=outbox.c.attempts - 1)
    )


async def last_event_type(conn: AsyncConnection, id_: str) -> str | None:
    """The type of the disclosure's newest event."""
    query = (
        select(disclosure_events.c.type)
        .where(disclosure_events.c.disclosure_id == id_)
        .order_by(disclosure_events.c.id.desc())
        .limit(1)
    )
    return await conn.scalar(query)


async def count_events(conn: AsyncConnection, id_: str, event_type: str) -> int:
    """How many events of this type the disclosure has (e.g. resends so far)."""
    query = select(disclosure_events.c.id).where(
        disclosure_events.c.disclosure_id == id_, disclosure_events.c.type == event_type
    )
    return len((await conn.execute(query)).all())


@dataclass(frozen=True, slots=True)
class FailedWithEnvelope:
    """A failed disclosure whose envelope the outbox still holds (a dead letter)."""

    disclosure_id: str
    partner_id: str
    agreement_id: str
    attempts: int
    failed_at: datetime


async def failed_with_envelope(
    conn: AsyncConnection, *, partner: str | None, limit: int
) -> list[FailedWithEnvelope]:
    """Failed disclosures with their envelope in the outbox, oldest failure first."""
    rows = disclosure_rows.c
    query = (
        select(rows.id, rows.partner_id, rows.agreement_id, rows.attempts, rows.updated_at)
        .join(outbox, outbox.c.disclosure_id == rows.id)
        .where(rows.status == str(Status.FAILED))
        .order_by(rows.updated_at, rows.id)
        .limit(limit)
    )
    if partner is not None:
        query = query.where(rows.partner_id == partner)
    return [FailedWithEnvelope(*row) for row in await conn.execute(query)]


async def latest_failure_reasons(
    conn: AsyncConnection, ids: Sequence[str], failure_events: Sequence[str]
) -> dict[str, str | None]:
    """Each disclosure's newest failure reason (the event's `reason`, else its type)."""
    if not ids:
        return {}
    events = disclosure_events.c
    query = (
        select(events.disclosure_id, events.type, events.detail)
        .where(events.disclosure_id.in_(ids), events.type.in_(failure_events))
        .order_by(events.id)
    )
    found: dict[str, str | None] = {}
    for row in await conn.execute(query):  # the newest failure wins
        detail = row.detail or {}
        found[row.disclosure_id] = detail.get("reason") or str(row.type)
    return found


@dataclass(frozen=True, slots=True)
class ReplayState:
    """What a replay must know of one disclosure."""

    status: Status
    partner_id: str
    has_envelope: bool
    key_ids: tuple[str, ...] = ()


async def replay_state(conn: AsyncConnection, id_: str) -> ReplayState | None:
    """The disclosure's status, partner, whether its envelope is still in the outbox, and the
    key ids it was sealed with."""
    rows = disclosure_rows.c
    query = (
        select(rows.status, rows.partner_id, outbox.c.id, rows.key_ids)
        .outerjoin(outbox, outbox.c.disclosure_id == rows.id)
        .where(rows.id == id_)
    )
    row = (await conn.execute(query)).first()
    if row is None:
        return None
    return ReplayState(Status(row[0]), row[1], row[2] is not None, tuple(row[3] or ()))


async def settle_replayed(
    conn: AsyncConnection, *, published: Sequence[str], due: Sequence[str], at: datetime
) -> None:
    """Replayed rows whose parked copy moved are published; the others are due now."""
    pending = outbox.c.state == PENDING
    if published:
        await conn.execute(
            update(outbox)
            .where(outbox.c.disclosure_id.in_(published), pending)
            .values(state="published", published_at=at)
        )
    if due:
        await conn.execute(
            update(outbox).where(outbox.c.disclosure_id.in_(due), pending).values(available_at=at)
        )


@dataclass(frozen=True, slots=True)
class AwaitingReceipt:
    """A disclosure handed to its channel and waiting for a receipt since `since`."""

    disclosure_id: str
    agreement_id: str
    since: datetime


async def dispatched_since(
    conn: AsyncConnection, *, before: datetime, limit: int
) -> list[AwaitingReceipt]:
    """The oldest disclosures still `dispatched` that were last moved before `before`."""
    rows = disclosure_rows.c
    query = (
        select(rows.id, rows.agreement_id, rows.updated_at)
        .where(rows.status == str(Status.DISPATCHED), rows.updated_at <= before)
        .order_by(rows.updated_at)
        .limit(limit)
    )
    return [AwaitingReceipt(*row) for row in await conn.execute(query)]


async def with_event(conn: AsyncConnection, ids: Sequence[str], event_type: str) -> set[str]:
    """Which of these disclosures have an event of this type."""
    if not ids:
        return set()
    events = disclosure_events.c
    query = select(events.disclosure_id).where(
        events.disclosure_id.in_(ids), events.type == event_type
    )
    return set(await conn.scalars(query))


async def dispatch_details(
    conn: AsyncConnection, limit: int
) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(disclosure id, partner, `dispatched` event detail) of disclosures still dispatched,
    newest event first."""
    events, rows = disclosure_events.c, disclosure_rows.c
    query = (
        select(events.disclosure_id, rows.partner_id, events.detail)
        .join(disclosure_rows, rows.id == events.disclosure_id)
        .where(events.type == "dispatched", rows.status == str(Status.DISPATCHED))
        .order_by(events.id.desc())
        .limit(limit)
    )
    return [(r.disclosure_id, r.partner_id, r.detail or {}) for r in await conn.execute(query)]
