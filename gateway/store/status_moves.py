"""Status moves, set-wise: many disclosures change status in a few statements, not a few each.

A move is the status change, its event and its audit entry, written together in the caller's
transaction. `apply` takes a batch: one locking read of every disclosure involved, one UPDATE per
shape of change (executemany), one INSERT of the events and one of the audit entries. A move the
status machine refuses now (a late duplicate, a race with another receipt or a deadline) is
reported, not raised, and writes nothing. The same disclosure may appear more than once in a batch;
its moves are judged in order, each against the status the previous one left.

Some facts must be recorded even when the status has moved on: a hand-over to the partner is a
disclosure whether or not the partner's receipt overtook it. Such a move (`record_if_refused`)
writes its event, audit entry and `changes` without touching the status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Delete, Select, Update, bindparam, delete, select, update
from sqlalchemy.engine import Connection

from gateway import audit_entry
from gateway.errors import NotFoundError
from gateway.store import audit_log
from gateway.store.database import require_transaction
from gateway.store.disclosure_model import Status, can_transition
from gateway.store.tables import disclosure_events, disclosures, held_records

_HELD_ENDS = frozenset({Status.REJECTED, Status.DENIED})  # a held disclosure decided for good


@dataclass(frozen=True, slots=True)
class Move:
    """Move disclosure `id` to `to`, recording `event_type` with `detail`.

    `changes` sets other columns of the disclosure in the same write (attempts, approver...).
    `record_if_refused` keeps the event (not the status) when the machine refuses the move.
    """

    id: str
    to: Status
    event_type: str
    actor: audit_entry.Actor
    at: datetime
    detail: Mapping[str, Any] = field(default_factory=dict)
    changes: Mapping[str, Any] = field(default_factory=dict)
    record_if_refused: bool = False


@dataclass(frozen=True, slots=True)
class Moved:
    """The status before the move (or, when refused, the status that refused it)."""

    before: Status
    moved: bool


def apply(conn: Connection, moves: Sequence[Move]) -> list[Moved]:
    """Apply every move the status machine allows; one result per move, in order.

    Raises `NotFoundError` when a disclosure does not exist (the batch is then retried item by
    item by the group commit, so only that move fails).
    """
    require_transaction(conn)
    ids = sorted({m.id for m in moves})  # one lock order for every batch: no deadlocks
    found = conn.execute(_locking_read(conn.dialect.name), {"ids": ids}).all()
    status = {row.id: Status(row.status) for row in found}
    partner = {row.id: str(row.partner_id) for row in found}
    results: list[Moved] = []
    updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    events: list[dict[str, Any]] = []
    entries: list[dict[str, Any]] = []
    decided: list[str] = []
    for move in moves:
        if move.id not in status:
            raise NotFoundError(f"disclosure {move.id} not found")
        current = status[move.id]
        allowed = can_transition(current, move.to)
        results.append(Moved(current, allowed))
        if not allowed and not move.record_if_refused:
            continue
        to = move.to if allowed else current
        status[move.id] = to
        values = {**move.changes, "status": str(to), "updated_at": move.at}
        updates.setdefault(tuple(sorted(values)), []).append({"b_id": move.id, **values})
        if allowed and to in _HELD_ENDS:  # the held request is no longer needed: destroy it
            decided.append(move.id)
        detail = dict(move.detail)
        events.append(
            {"disclosure_id": move.id, "at": move.at, "type": move.event_type, "detail": detail}
        )
        targets = {"disclosure": move.id, "partner": partner[move.id]}
        details = {"from": str(current), "to": str(to), **detail}
        entries.append(
            audit_entry.pending_row(
                move.actor,
                f"disclosure.{move.event_type}",
                at=move.at,
                targets=targets,
                details=details,
            )
        )
    for columns, rows in updates.items():
        conn.execute(_update(columns), rows)
    if decided:
        conn.execute(_destroy_held(), {"ids": decided})
    if events:
        audit_log.insert_with_entries_sync(conn, [(disclosure_events, events)], entries)
    return results


@lru_cache(maxsize=4)
def _locking_read(dialect: str) -> Select[Any]:
    query = (
        select(disclosures.c.id, disclosures.c.status, disclosures.c.partner_id)
        .where(disclosures.c.id.in_(bindparam("ids", expanding=True)))
        .order_by(disclosures.c.id)
    )
    return query.with_for_update() if dialect == "postgresql" else query


@lru_cache(maxsize=32)
def _update(columns: tuple[str, ...]) -> Update:
    values = {c: bindparam(c, type_=disclosures.c[c].type) for c in columns}
    return update(disclosures).where(disclosures.c.id == bindparam("b_id")).values(values)


@lru_cache(maxsize=1)
def _destroy_held() -> Delete:
    return delete(held_records).where(
        held_records.c.disclosure_id.in_(bindparam("ids", expanding=True))
    )
