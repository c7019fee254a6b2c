"""A large synthetic disclosure history for the records tests, with its counts kept in Python.

The counts are tallied here, as the rows are made, so a test compares what the gateway reports
with figures that never went through its SQL.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import insert

from gateway.store.database import Store
from gateway.store.tables import disclosures
from gateway.store.unit_of_work import Connection
from tests.integration.store_support import T0

# (agreement, version, partner, purpose) as the example catalog has them.
SHARES = (
    ("KM-POL-SG-018", 1, "kent-police", "safeguarding_children"),
    ("KM-NHS-LAC-001", 1, "medway-ft", "looked_after_children_health"),
    ("KM-GP-005", 1, "riverside-gp", "care_assessment"),
    ("KM-DFE-CIN-013", 1, "dfe", "statutory_return"),
)
STATUSES = ("receipted", "receipted", "receipted", "failed", "denied")
FIELDS = ("person.name", "person.date_of_birth")
CHUNK = 5000


@dataclass
class Tally:
    """What was written, counted independently of the store."""

    total: int = 0
    by_agreement: Counter[str] = field(default_factory=Counter)
    by_partner_status: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_agreement_day: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_agreement_status: Counter[tuple[str, str]] = field(default_factory=Counter)


def _row(i: int) -> dict[str, Any]:
    agreement, version, partner, purpose = SHARES[i % len(SHARES)]
    at = T0 + timedelta(minutes=i)
    return {
        "id": f"d-{i:07d}",
        "client": "mosaic-childrens",
        "agreement_id": agreement,
        "agreement_version": version,
        "partner_id": partner,
        "purpose": purpose,
        "lawful_basis": "UK GDPR 6(1)(e)",
        "status": STATUSES[(i // len(SHARES)) % len(STATUSES)],
        "subject_nhs_index": None,
        "subject_local_index": None,
        "fields_sent": list(FIELDS),
        "fields_removed": [],
        "requested_by_user": "sw.alee",
        "requested_by_role": "social_worker",
        "reason": "synthetic",
        "decision_reasons": ["allowed"],
        "approver": "dpo.jsmith" if partner == "kent-police" else None,
        "key_ids": [],
        "digest": None,
        "retain_until": at + timedelta(days=365),
        "created_at": at,
        "updated_at": at,
        "attempts": 0,
    }


async def seed_history(store: Store, count: int) -> Tally:
    """Write `count` disclosures, one a minute from T0, in a few large units of work."""
    tally = Tally()
    for start in range(0, count, CHUNK):
        rows = [_row(i) for i in range(start, min(start + CHUNK, count))]

        async def work(conn: Connection, rows: list[dict[str, Any]] = rows) -> None:
            await conn.execute(insert(disclosures), rows)

        await store.write(work)
        for row in rows:
            tally.total += 1
            tally.by_agreement[row["agreement_id"]] += 1
            tally.by_partner_status[(row["partner_id"], row["status"])] += 1
            day = row["created_at"].date().isoformat()
            tally.by_agreement_day[(row["agreement_id"], day)] += 1
            tally.by_agreement_status[(row["agreement_id"], row["status"])] += 1
    return tally
