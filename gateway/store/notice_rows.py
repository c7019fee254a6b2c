"""Article 19 notices in the store: the notice record, and for each sealed one its delivery row.

A sealed notice is written like an accepted disclosure (a `disclosures` row of kind `notice`,
its event, its outbox envelope and its audit entry, in one transaction), so the delivery
engine, retries, dead letters and receipts treat it the same; the `subject_notices` row says
what it is about. A notice that could not be sealed is recorded with the reason, and audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway import audit_entry
from gateway.store import audit_log
from gateway.store.database import require_transaction
from gateway.store.disclosure_model import NOTICE, Status
from gateway.store.tables import disclosure_events, disclosures, outbox, subject_notices


@dataclass(frozen=True, slots=True)
class NoticeRecord:
    """One partner's notice: what it concerns (paths and ids, never values)."""

    id: str
    request_id: str
    subject_nhs_index: str
    kind: str
    partner_id: str
    disclosure_ids: tuple[str, ...]
    paths: tuple[str, ...]
    corrected_paths: tuple[str, ...]
    reason: str  # sealed under the data key
    requested_by: str
    created_at: datetime
    retain_until: datetime | None  # None only on notices recorded before it was kept


@dataclass(frozen=True, slots=True)
class NoticeDelivery:
    """What a sealed notice leaves with: the envelope, and the agreement it is delivered under."""

    envelope: bytes
    digest: str
    key_ids: tuple[str, ...]
    agreement_id: str
    agreement_version: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class NoticeStatus:
    """A recorded notice and where its delivery is now (None: never sealed; see `not_sent`)."""

    record: NoticeRecord
    not_sent: str | None
    status: str | None
    receipted_at: datetime | None


def _notice_row(record: NoticeRecord, not_sent: str | None) -> dict[str, Any]:
    return {
        "id": record.id,
        "request_id": record.request_id,
        "subject_nhs_index": record.subject_nhs_index,
        "kind": record.kind,
        "partner_id": record.partner_id,
        "disclosure_ids": list(record.disclosure_ids),
        "paths": list(record.paths),
        "corrected_paths": list(record.corrected_paths),
        "reason": record.reason,
        "not_sent": not_sent,
        "requested_by": record.requested_by,
        "created_at": record.created_at,
        "retain_until": record.retain_until,
    }


def _details(record: NoticeRecord) -> dict[str, Any]:
    return {
        "kind": record.kind,
        "request": record.request_id,
        "disclosures": list(record.disclosure_ids),
        "paths": list(record.paths),
        "corrected_paths": list(record.corrected_paths),
    }


async def record_sealed(
    conn: AsyncConnection,
    record: NoticeRecord,
    delivery: NoticeDelivery,
    *,
    actor: audit_entry.Actor,
) -> None:
    """The notice, its delivery row, event, outbox envelope and audit entry, atomically."""
    require_transaction(conn)
    if record.retain_until is None:
        raise ValueError("a sealed notice is recorded with the date it is kept until")
    at = record.created_at
    await conn.execute(insert(subject_notices).values(_notice_row(record, None)))
    await conn.execute(
        insert(disclosures).values(
            id=record.id,
            # Not a client system's name (those have no colon): no API client can read it.
            client=f"admin:{actor.name}"[:120],
            agreement_id=delivery.agreement_id,
            agreement_version=delivery.agreement_version,
            partner_id=record.partner_id,
            purpose=f"art19_{record.kind}",
            lawful_basis="art6(1)(c); UK GDPR Art 19",
            status=str(Status.QUEUED),
            subject_nhs_index=None,  # a notice is no disclosure about the person
            subject_local_index=None,
            fields_sent=[],
            fields_removed=[],
            fields_refused=[],
            requested_by_user=actor.name,
            requested_by_role="data_protection",
            reason=record.reason,
            decision_reasons=[],
            key_ids=list(delivery.key_ids),
            digest=delivery.digest,
            retain_until=record.retain_until,
            created_at=at,
            updated_at=at,
            attempts=0,
            expires_at=delivery.expires_at,
            record_kind=NOTICE,
        )
    )
    await conn.execute(
        insert(disclosure_events).values(
            disclosure_id=record.id,
            at=at,
            type="accepted",
            detail={"record_kind": NOTICE, "digest": delivery.digest},
        )
    )
    await conn.execute(
        insert(outbox).values(
            disclosure_id=record.id,
            partner_id=record.partner_id,
            envelope=delivery.envelope,
            digest=delivery.digest,
            state="pending",
            attempts=0,
            available_at=at,
            created_at=at,
        )
    )
    targets = {"notice": record.id, "partner": record.partner_id}
    details = {**_details(record), "digest": delivery.digest, "key_ids": list(delivery.key_ids)}
    await audit_log.append(
        conn, actor, "subject_notice.queued", at=at, targets=targets, details=details
    )


async def record_not_sent(
    conn: AsyncConnection, record: NoticeRecord, reason_code: str, *, actor: audit_entry.Actor
) -> None:
    """A notice no envelope could be sealed for (no partner key, partner unknown), audited."""
    require_transaction(conn)
    await conn.execute(insert(subject_notices).values(_notice_row(record, reason_code)))
    targets = {"notice": record.id, "partner": record.partner_id}
    await audit_log.append(
        conn,
        actor,
        "subject_notice.not_sent",
        at=record.created_at,
        targets=targets,
        details={**_details(record), "reason": reason_code},
    )


async def notices_about(conn: AsyncConnection, nhs_index: str) -> Sequence[NoticeStatus]:
    """Every notice recorded about the person, oldest first, with its delivery status."""
    query = (
        select(subject_notices, disclosures.c.status, disclosures.c.updated_at)
        .select_from(
            subject_notices.outerjoin(disclosures, disclosures.c.id == subject_notices.c.id)
        )
        .where(subject_notices.c.subject_nhs_index == nhs_index)
        .order_by(subject_notices.c.created_at, subject_notices.c.id)
    )
    found = []
    for row in await conn.execute(query):
        record = NoticeRecord(
            id=row.id,
            request_id=row.request_id,
            subject_nhs_index=row.subject_nhs_index,
            kind=row.kind,
            partner_id=row.partner_id,
            disclosure_ids=tuple(row.disclosure_ids),
            paths=tuple(row.paths),
            corrected_paths=tuple(row.corrected_paths),
            reason=row.reason,
            requested_by=row.requested_by,
            created_at=row.created_at,
            retain_until=row.retain_until,
        )
        receipted = row.updated_at if row.status == str(Status.RECEIPTED) else None
        found.append(NoticeStatus(record, row.not_sent, row.status, receipted))
    return found
