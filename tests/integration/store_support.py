"""Helpers shared by the store, audit, retention and subject-report tests (synthetic data only)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from joserfc.jwk import ECKey
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit import Actor, ActorKind
from gateway.audit_verify import JwksCheckpointVerifier
from gateway.protection import Protection
from gateway.signer import FileSigner
from gateway.store import disclosures
from gateway.store.database import Store
from gateway.store.disclosure_model import NewDisclosure, SubjectIndexes
from gateway.store.tables import audit_log, audit_pending

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
CLIENT = Actor(ActorKind.CLIENT, "mosaic-childrens")
ADMIN = Actor(ActorKind.ADMIN, "dpo.jsmith")
# Synthetic identifiers: 999 numbers are never issued as real NHS numbers.
NHS_NUMBER = "9990001235"  # passes the modulus 11 check
LOCAL_ID = "MDW-SYN-000123"


@asynccontextmanager
async def open_store(url: str) -> AsyncIterator[Store]:
    """A migrated store, closed afterwards."""
    store = await Store.open(url)
    try:
        await store.upgrade()
        yield store
    finally:
        await store.close()


async def record_accepted(
    store: Store,
    new: NewDisclosure,
    *,
    envelope: bytes = b"jwe",
    digest: str = "d",
    at: datetime = T0,
) -> None:
    """Record `new` as accepted from CLIENT, in a unit of work of its own."""
    await store.write(
        lambda conn: disclosures.record_accepted(
            conn, new, envelope=envelope, digest=digest, actor=CLIENT, at=at
        )
    )


def protection(tmp_path: Path) -> Protection:
    """The gateway's at-rest keys in a per-test folder."""
    return Protection.from_dir(tmp_path / "keys")


def new_disclosure(
    prot: Protection,
    *,
    id_: str | None = None,
    nhs_number: str = NHS_NUMBER,
    local_id: str = LOCAL_ID,
    retain_until: datetime = T0 + timedelta(days=365),
    partner: str = "kent-police",
) -> NewDisclosure:
    """A plausible disclosure about the synthetic subject."""
    return NewDisclosure(
        id=id_ or str(uuid.uuid4()),
        client="mosaic-childrens",
        agreement_id="isa-police-safeguarding",
        agreement_version=3,
        partner_id=partner,
        purpose="safeguarding_children",
        lawful_basis="UK GDPR 6(1)(e); Children Act 2004 s11",
        subject=SubjectIndexes.of(prot, nhs_number=nhs_number, local_id=local_id),
        requested_by_user="sw.alee",
        requested_by_role="social_worker",
        reason="section 47 enquiry",
        retain_until=retain_until,
        fields_sent=("person.name", "person.date_of_birth"),
        fields_removed=("health.diagnoses",),
        decision_reasons=("allowed",),
        key_ids=("council-sig-2026-01", "kent-police-enc-1"),
    )


def checkpoint_keys(
    kid: str = "council-sig-test",
) -> tuple[FileSigner, JwksCheckpointVerifier]:
    """A signer and verifier on a fresh EC P-256 test key."""
    key = ECKey.generate_key("P-256", parameters={"kid": kid})
    jwks = {"keys": [key.as_dict(private=False)]}
    return FileSigner(kid, key), JwksCheckpointVerifier(jwks)


async def audit_entries(conn: AsyncConnection) -> int:
    """Audit entries appended so far: chained (at once on SQLite) or pending (PostgreSQL)."""
    total = 0
    for table in (audit_log, audit_pending):
        total += int(await conn.scalar(select(func.count()).select_from(table)) or 0)
    return total
