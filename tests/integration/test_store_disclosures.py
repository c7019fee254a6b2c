"""Disclosure repository: atomic writes, the status machine, per-client reads, on both backends."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from gateway.errors import NotFoundError
from gateway.store import disclosures
from gateway.store.database import NotInTransactionError
from gateway.store.disclosure_model import IllegalTransitionError, Status
from gateway.store.tables import disclosure_events, held_records, outbox
from gateway.store.tables import disclosures as disclosures_table
from gateway.store.unit_of_work import Connection
from tests.integration.store_support import (
    CLIENT,
    T0,
    audit_entries,
    new_disclosure,
    open_store,
    protection,
    record_accepted,
)

ENVELOPE = b"eyJhbGciOiJFQ0RILUVTK0EyNTZLVyJ9.synthetic.jwe.bytes"


async def count(conn, table) -> int:  # type: ignore[no-untyped-def]
    return int(await conn.scalar(select(func.count()).select_from(table)))


async def test_record_accepted_writes_row_events_outbox_and_audit(
    database_url: str, tmp_path: Path
) -> None:
    prot = protection(tmp_path)
    new = new_disclosure(prot)
    async with open_store(database_url) as store:
        await record_accepted(store, new, envelope=ENVELOPE, digest="d1")
        async with store.read() as conn:
            stored = await disclosures.get(conn, new.id)
            events = await disclosures.timeline(conn, new.id)
            box = (await conn.execute(select(outbox))).one()
            assert await audit_entries(conn) == 1
    assert stored is not None
    assert stored.status is Status.QUEUED
    assert stored.fields_sent == ("person.name", "person.date_of_birth")
    assert stored.created_at == T0
    assert [e.type for e in events] == ["accepted"]
    assert (bytes(box.envelope), box.state, box.digest) == (ENVELOPE, "pending", "d1")


async def test_outbox_write_is_all_or_nothing(database_url: str, tmp_path: Path) -> None:
    """A failure after the disclosure insert (the outbox insert fails) leaves nothing behind."""
    new = new_disclosure(protection(tmp_path))
    async with open_store(database_url) as store:
        with pytest.raises(IntegrityError):
            await record_accepted(store, new, digest=None)  # type: ignore[arg-type]
        async with store.read() as conn:
            for table in (disclosures_table, disclosure_events, outbox):
                assert await count(conn, table) == 0, table.name
            assert await audit_entries(conn) == 0


async def test_caller_failure_after_recording_rolls_everything_back(
    database_url: str, tmp_path: Path
) -> None:
    new = new_disclosure(protection(tmp_path))
    async with open_store(database_url) as store:

        async def record_then_crash(conn: Connection) -> None:
            await disclosures.record_accepted(
                conn, new, envelope=ENVELOPE, digest="d1", actor=CLIENT, at=T0
            )
            raise RuntimeError("crash before commit")

        with pytest.raises(RuntimeError, match="crash"):
            await store.write(record_then_crash)
        async with store.read() as conn:
            assert await disclosures.get(conn, new.id) is None
            assert await count(conn, outbox) == 0
            assert await audit_entries(conn) == 0


async def test_writes_outside_a_transaction_are_refused(sqlite_url: str, tmp_path: Path) -> None:
    new = new_disclosure(protection(tmp_path))
    async with open_store(sqlite_url) as store, store.engine.connect() as conn:
        with pytest.raises(NotInTransactionError):
            await disclosures.record_denied(conn, new, actor=CLIENT, at=T0)


async def test_status_machine_allows_only_legal_moves(database_url: str, tmp_path: Path) -> None:
    new = new_disclosure(protection(tmp_path))
    later = T0 + timedelta(minutes=1)
    async with open_store(database_url) as store:
        await record_accepted(store, new, envelope=ENVELOPE)

        async def dispatch_then_receipt(conn: Connection) -> Status:
            old = await disclosures.transition(
                conn,
                new.id,
                Status.DISPATCHED,
                event_type="dispatched",
                actor=CLIENT,
                at=later,
                detail={"channel": "webhook"},
                changes={"attempts": 1},
            )
            await disclosures.transition(
                conn, new.id, Status.RECEIPTED, event_type="receipted", actor=CLIENT, at=later
            )
            return old

        assert await store.write(dispatch_then_receipt) is Status.QUEUED
        with pytest.raises(IllegalTransitionError) as refused:
            await store.write(
                lambda conn: disclosures.transition(
                    conn, new.id, Status.QUEUED, event_type="replayed", actor=CLIENT, at=later
                )
            )
        assert refused.value.code == "illegal_transition"
        with pytest.raises(NotFoundError):
            await store.write(
                lambda conn: disclosures.transition(
                    conn, "no-such-id", Status.FAILED, event_type="failed", actor=CLIENT, at=later
                )
            )
        async with store.read() as conn:
            stored = await disclosures.get(conn, new.id)
            events = await disclosures.timeline(conn, new.id)
    assert stored is not None
    assert (stored.status, stored.attempts, stored.updated_at) == (Status.RECEIPTED, 1, later)
    assert [e.type for e in events] == ["accepted", "dispatched", "receipted"]
    assert events[1].detail == {"channel": "webhook"}


async def test_denied_has_no_outbox_row(database_url: str, tmp_path: Path) -> None:
    new = new_disclosure(protection(tmp_path))
    async with open_store(database_url) as store:
        await store.write(lambda conn: disclosures.record_denied(conn, new, actor=CLIENT, at=T0))
        async with store.read() as conn:
            stored = await disclosures.get(conn, new.id)
            assert await count(conn, outbox) == 0
            assert await audit_entries(conn) == 1
    assert stored is not None
    assert stored.status is Status.DENIED


async def test_held_record_is_sealed_then_released_on_approval(
    database_url: str, tmp_path: Path
) -> None:
    prot = protection(tmp_path)
    new = new_disclosure(prot)
    request = b'{"record": {"person": {"name": "Synthetic Person"}}}'
    async with open_store(database_url) as store:
        await store.write(
            lambda conn: disclosures.record_held(
                conn, new, request=request, protection=prot, actor=CLIENT, at=T0
            )
        )
        async with store.read() as conn:
            sealed = await conn.scalar(select(held_records.c.ciphertext))
            assert b"Synthetic" not in bytes(sealed)
            assert await disclosures.held_request(conn, new.id, prot) == request
        await store.write(
            lambda conn: disclosures.release_approved(
                conn,
                new.id,
                envelope=ENVELOPE,
                digest="d2",
                approver="dpo.jsmith",
                fields_sent=("person.name",),
                fields_removed=(),
                key_ids=("k1",),
                actor=CLIENT,
                at=T0,
            )
        )
        async with store.read() as conn:
            stored = await disclosures.get(conn, new.id)
            assert await count(conn, held_records) == 0
            assert await count(conn, outbox) == 1
    assert stored is not None
    assert (stored.status, stored.approver, stored.digest) == (Status.QUEUED, "dpo.jsmith", "d2")


async def test_rejection_destroys_the_held_record(database_url: str, tmp_path: Path) -> None:
    prot = protection(tmp_path)
    new = new_disclosure(prot)
    async with open_store(database_url) as store:

        async def hold_then_reject(conn: Connection) -> None:
            await disclosures.record_held(
                conn, new, request=b"{}", protection=prot, actor=CLIENT, at=T0
            )
            await disclosures.transition(
                conn, new.id, Status.REJECTED, event_type="rejected", actor=CLIENT, at=T0
            )

        await store.write(hold_then_reject)
        async with store.read() as conn:
            assert await count(conn, held_records) == 0


async def test_a_client_sees_only_its_own_disclosures(database_url: str, tmp_path: Path) -> None:
    new = new_disclosure(protection(tmp_path))
    async with open_store(database_url) as store:
        await store.write(lambda conn: disclosures.record_denied(conn, new, actor=CLIENT, at=T0))
        async with store.read() as conn:
            assert await disclosures.get_for_client(conn, new.id, "mosaic-childrens") is not None
            assert await disclosures.get_for_client(conn, new.id, "liquidlogic-adults") is None
