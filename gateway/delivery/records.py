"""What the delivery engine writes: status moves (via `disclosures.transition`), delivery events
that are not status moves (a retry, a hold, a transport acknowledgement), and outbox states.

Every function runs inside the caller's transaction, so a status, its event, its audit entry and
the envelope's outbox state always change together. Details carry codes and numbers only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway import audit
from gateway.errors import NotFoundError
from gateway.store import disclosures
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
    actor: audit.Actor = audit.SYSTEM,
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
    await audit.append(
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
    actor: audit.Actor = audit.SYSTEM,
    changes: Mapping[str, Any] | None = None,
) -> bool:
    """Transition when the status machine allows it now; False (and no write) when it does not.

    A worker may find the disclosure already receipted (a late duplicate) or already failed:
    that is not an error, there is just nothing left to record.
    """
    try:
        _before, moved = await disclosures.transition_if_allowed(
            conn, id_, to, event_type=event_type, actor=actor, at=at, detail=detail,
            changes=changes,
        )  # fmt: skip
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
    actor: audit.Actor = audit.SYSTEM,
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
        conn, id_, Status.FAILED, event_type="failed", at=at, detail=detail, actor=actor,
        changes=changes,
    )  # fmt: skip
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
