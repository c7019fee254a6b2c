"""Disclosure repository: every write is one transaction with its events, outbox row and audit.

The pipeline calls `record_accepted`, `record_denied` or `record_held` once per request, and
`transition` for every later step; each writes the disclosure row, its event(s) and its audit
entry together (and the sealed envelope into the outbox where there is one), so nothing can be
recorded without its audit trail, and nothing accepted can be lost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Select, bindparam, delete, insert, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway import audit_entry
from gateway.errors import NotFoundError
from gateway.store import audit_log, envelope_parts, status_moves
from gateway.store.database import require_transaction
from gateway.store.disclosure_model import (
    AtRestKeys,
    Disclosure,
    DisclosureEvent,
    IllegalTransitionError,
    NewDisclosure,
    Status,
)
from gateway.store.tables import (
    disclosure_events,
    disclosures,
    held_records,
    outbox,
)


def _row(new: NewDisclosure, status: Status, at: datetime, digest: str | None) -> dict[str, Any]:
    return {
        "id": new.id,
        "client": new.client,
        "agreement_id": new.agreement_id,
        "agreement_version": new.agreement_version,
        "partner_id": new.partner_id,
        "purpose": new.purpose,
        "lawful_basis": new.lawful_basis,
        "status": str(status),
        "subject_nhs_index": new.subject.nhs_number,
        "subject_local_index": new.subject.local_id,
        "fields_sent": list(new.fields_sent),
        "fields_removed": list(new.fields_removed),
        "fields_refused": [dict(refused) for refused in new.fields_refused],
        "requested_by_user": new.requested_by_user,
        "requested_by_role": new.requested_by_role,
        "reason": new.reason,
        "decision_reasons": list(new.decision_reasons),
        "approver": new.approver,
        "key_ids": list(new.key_ids),
        "expires_at": new.expires_at,
        "digest": digest,
        "retain_until": new.retain_until,
        "created_at": at,
        "updated_at": at,
        "attempts": 0,
    }


def _targets(new: NewDisclosure) -> dict[str, str]:
    return {
        "disclosure": new.id,
        "agreement": f"{new.agreement_id}@{new.agreement_version}",
        "partner": new.partner_id,
        "client": new.client,
    }


def _summary(new: NewDisclosure) -> dict[str, Any]:
    """Audit details: names and codes only (field paths, reason codes, key ids)."""
    summary: dict[str, Any] = {
        "purpose": new.purpose,
        "requested_by": {"user": new.requested_by_user, "role": new.requested_by_role},
        "fields_sent": list(new.fields_sent),
        "fields_removed": list(new.fields_removed),
        "fields_refused": [dict(refused) for refused in new.fields_refused],
        "reasons": list(new.decision_reasons),
        "key_ids": list(new.key_ids),
    }
    if new.unknown_fields_removed:
        summary["unknown_fields_removed"] = new.unknown_fields_removed
    return summary


def _event_rows(id_: str, at: datetime, *events: DisclosureEvent) -> list[dict[str, Any]]:
    return [
        {"disclosure_id": id_, "at": at, "type": e.type, "detail": dict(e.detail)} for e in events
    ]


async def _events(conn: AsyncConnection, id_: str, at: datetime, *events: DisclosureEvent) -> None:
    await conn.execute(insert(disclosure_events), _event_rows(id_, at, *events))


def _outbox_row(
    id_: str, partner_id: str, *, envelope: bytes, digest: str, at: datetime
) -> dict[str, Any]:
    return {
        "disclosure_id": id_,
        "partner_id": partner_id,
        **envelope_parts.outbox_columns(envelope),
        "digest": digest,
        "state": "pending",
        "attempts": 0,
        "available_at": at,
        "created_at": at,
    }


@dataclass(frozen=True, slots=True)
class AcceptedDisclosure:
    """One allowed disclosure ready to record: its metadata, envelope and who submitted it."""

    new: NewDisclosure
    envelope: bytes
    digest: str
    actor: audit_entry.Actor
    at: datetime


async def record_accepted(
    conn: AsyncConnection,
    new: NewDisclosure,
    *,
    envelope: bytes,
    digest: str,
    actor: audit_entry.Actor,
    at: datetime,
) -> None:
    """Record an allowed disclosure: row, events, outbox envelope and audit entry, atomically."""
    await record_accepted_many(conn, [AcceptedDisclosure(new, envelope, digest, actor, at)])


async def record_accepted_many(conn: AsyncConnection, items: Sequence[AcceptedDisclosure]) -> None:
    """Record several allowed disclosures in the caller's transaction (group commit).

    Rows go table by table for the whole batch, so a batch costs about as many statements as a
    single disclosure; each disclosure still has its row, event, outbox entry and audit entry.
    """
    require_transaction(conn)
    await conn.run_sync(record_accepted_setwise, items)


def record_accepted_setwise(conn: Connection, items: Sequence[AcceptedDisclosure]) -> list[None]:
    """`record_accepted_many` on a sync connection: the whole batch in one hand-off to the
    driver (one None each)."""
    require_transaction(conn)
    rows, events, queued, entries = [], [], [], []
    for item in items:
        new, at, digest = item.new, item.at, item.digest
        # One event per status change: "accepted" is the move into `queued`.
        accepted = DisclosureEvent(
            at, "accepted", {"reasons": list(new.decision_reasons), "digest": digest}
        )
        rows.append(_row(new, Status.QUEUED, at, digest))
        events.extend(_event_rows(new.id, at, accepted))
        queued.append(
            _outbox_row(new.id, new.partner_id, envelope=item.envelope, digest=digest, at=at)
        )
        details = {**_summary(new), "digest": digest}
        entries.append(
            audit_entry.pending_row(
                item.actor, "disclosure.accepted", at=at, targets=_targets(new), details=details
            )
        )
    audit_log.insert_with_entries_sync(
        conn, [(disclosures, rows), (disclosure_events, events), (outbox, queued)], entries
    )
    for item in items:
        envelope_parts.write(conn, item.new.id, item.envelope)
    return [None] * len(items)


async def record_denied(
    conn: AsyncConnection, new: NewDisclosure, *, actor: audit_entry.Actor, at: datetime
) -> None:
    """Record a policy refusal with its reason codes (no envelope exists)."""
    require_transaction(conn)
    await conn.execute(insert(disclosures).values(_row(new, Status.DENIED, at, None)))
    await _events(
        conn, new.id, at, DisclosureEvent(at, "denied", {"reasons": list(new.decision_reasons)})
    )
    await audit_log.append(
        conn, actor, "disclosure.denied", at=at, targets=_targets(new), details=_summary(new)
    )


async def record_held(
    conn: AsyncConnection,
    new: NewDisclosure,
    *,
    request: bytes,
    protection: AtRestKeys,
    actor: audit_entry.Actor,
    at: datetime,
) -> None:
    """Hold a disclosure for approval; the request is stored only sealed under the data key."""
    require_transaction(conn)
    await conn.execute(insert(disclosures).values(_row(new, Status.PENDING_APPROVAL, at, None)))
    sealed = protection.seal_at_rest(request, new.id.encode())
    await conn.execute(
        insert(held_records).values(disclosure_id=new.id, ciphertext=sealed, created_at=at)
    )
    await _events(
        conn, new.id, at, DisclosureEvent(at, "held", {"reasons": list(new.decision_reasons)})
    )
    await audit_log.append(
        conn, actor, "disclosure.held", at=at, targets=_targets(new), details=_summary(new)
    )


async def held_request(conn: AsyncConnection, id_: str, protection: AtRestKeys) -> bytes:
    """The held request, decrypted, for the approver's decision and then the pipeline."""
    sealed = await conn.scalar(
        select(held_records.c.ciphertext).where(held_records.c.disclosure_id == id_)
    )
    if sealed is None:
        raise NotFoundError(f"no held record for disclosure {id_}")
    return protection.open_at_rest(bytes(sealed), id_.encode())


async def transition(
    conn: AsyncConnection,
    id_: str,
    new_status: Status,
    *,
    event_type: str,
    actor: audit_entry.Actor,
    at: datetime,
    detail: Mapping[str, Any] | None = None,
    changes: Mapping[str, Any] | None = None,
) -> Status:
    """Move a disclosure to `new_status` with its event and audit entry; returns the old status.

    `changes` updates other columns in the same statement (e.g. attempts, approver, key ids).
    Refuses moves the status machine does not allow.
    """
    current, moved = await transition_if_allowed(
        conn,
        id_,
        new_status,
        event_type=event_type,
        actor=actor,
        at=at,
        detail=detail,
        changes=changes,
    )
    if not moved:
        raise IllegalTransitionError(f"disclosure {id_}: {current} -> {new_status} not allowed")
    return current


async def transition_if_allowed(
    conn: AsyncConnection,
    id_: str,
    new_status: Status,
    *,
    event_type: str,
    actor: audit_entry.Actor,
    at: datetime,
    detail: Mapping[str, Any] | None = None,
    changes: Mapping[str, Any] | None = None,
) -> tuple[Status, bool]:
    """Like `transition`, but a move the status machine refuses is (current, False), not an error.

    For callers racing others to the same end (two receipts, a receipt and a deadline).
    """
    move = status_moves.Move(
        id_, new_status, event_type, actor, at, detail=detail or {}, changes=changes or {}
    )
    [result] = await conn.run_sync(status_moves.apply, [move])
    return result.before, result.moved


async def release_approved(
    conn: AsyncConnection,
    id_: str,
    *,
    envelope: bytes,
    digest: str,
    approver: str,
    fields_sent: tuple[str, ...],
    fields_removed: tuple[str, ...],
    key_ids: tuple[str, ...],
    actor: audit_entry.Actor,
    at: datetime,
    expires_at: datetime | None = None,
    fields_refused: Sequence[Mapping[str, str]] = (),
) -> None:
    """An approved hold leaves: queued with its envelope in the outbox, held record destroyed."""
    refused = [dict(item) for item in fields_refused]
    changes = {
        "expires_at": expires_at,
        "digest": digest,
        "approver": approver,
        "fields_sent": list(fields_sent),
        "fields_removed": list(fields_removed),
        "fields_refused": refused,
        "key_ids": list(key_ids),
    }
    detail: dict[str, Any] = {"approver": approver, "digest": digest}
    if refused:
        detail["fields_refused"] = refused  # the approval's audit entry names them too
    await transition(
        conn,
        id_,
        Status.QUEUED,
        event_type="approved",
        actor=actor,
        at=at,
        detail=detail,
        changes=changes,
    )
    partner_id = await conn.scalar(select(disclosures.c.partner_id).where(disclosures.c.id == id_))
    row = _outbox_row(id_, str(partner_id), envelope=envelope, digest=digest, at=at)
    await conn.execute(insert(outbox), row)
    await conn.run_sync(envelope_parts.write, id_, envelope)
    await conn.execute(delete(held_records).where(held_records.c.disclosure_id == id_))


async def get(conn: AsyncConnection, id_: str) -> Disclosure | None:
    """One disclosure by id (for admins and workers)."""
    row = (await conn.execute(select(disclosures).where(disclosures.c.id == id_))).first()
    return Disclosure.from_row(row._mapping) if row else None


def get_many(conn: Connection, ids: Sequence[str]) -> list[Disclosure | None]:
    """Disclosures by id, one query for all (None where there is none), in the order asked."""
    rows = conn.execute(_by_ids(), {"ids": sorted(set(ids))})
    found = {row.id: Disclosure.from_row(row._mapping) for row in rows}
    return [found.get(id_) for id_ in ids]


@lru_cache(maxsize=1)
def _by_ids() -> Select[Any]:
    return select(disclosures).where(disclosures.c.id.in_(bindparam("ids", expanding=True)))


async def get_for_client(conn: AsyncConnection, id_: str, client: str) -> Disclosure | None:
    """One disclosure, only if this client submitted it (others see nothing, not a 403)."""
    query = select(disclosures).where(disclosures.c.id == id_, disclosures.c.client == client)
    row = (await conn.execute(query)).first()
    return Disclosure.from_row(row._mapping) if row else None


async def timeline(conn: AsyncConnection, id_: str) -> list[DisclosureEvent]:
    """The disclosure's events, oldest first."""
    query = (
        select(disclosure_events)
        .where(disclosure_events.c.disclosure_id == id_)
        .order_by(disclosure_events.c.at, disclosure_events.c.id)
    )
    return [DisclosureEvent(r.at, r.type, r.detail) for r in await conn.execute(query)]


async def about_subject(
    conn: AsyncConnection, *, nhs_index: str | None, local_index: str | None
) -> list[Disclosure]:
    """Every disclosure about the person with either blind index, oldest first."""
    matches = []
    if nhs_index:
        matches.append(disclosures.c.subject_nhs_index == nhs_index)
    if local_index:
        matches.append(disclosures.c.subject_local_index == local_index)
    if not matches:
        return []
    query = select(disclosures).where(or_(*matches)).order_by(disclosures.c.created_at)
    return [Disclosure.from_row(row._mapping) for row in await conn.execute(query)]
