"""Approvers and approval decisions in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection as SyncConnection
from sqlalchemy import select

from agreements.loader import default_catalog_dir, load_catalog
from gateway.agreement_lifecycle import AgreementNotFoundError
from gateway.application.approver_register import (
    ApproverExistsError,
    ApproverNotFoundError,
    add_approver,
    list_approvers,
    remove_approver,
)
from gateway.application.catalog_apply import apply_catalog
from gateway.store import approvals, approvers_repo, disclosures, migrate
from gateway.store.approvers_repo import StoredApprover
from gateway.store.database import Store
from gateway.store.dialects import WRITE_OPTION
from gateway.store.disclosure_model import Status
from gateway.store.tables import approvers, audit_log, audit_pending, held_records
from gateway.store.unit_of_work import Connection
from tests.integration.store_support import ADMIN, T0, new_disclosure, open_store, protection

FACTS = {"rank": "Detective Constable", "why_necessary": {"sealed": "c2VhbGVk"}}


async def test_approvers_round_trip(database_url: str) -> None:
    guardian = StoredApprover(
        "cg-0001", "CG-0001", "caldicott_guardian", frozenset({"A-1", "B-2"}), "ig", T0
    )
    dpo = StoredApprover("dpo-0002", "dpo-0002", None, frozenset({"A-1"}), "ig", T0)

    async def work(conn: Connection) -> None:
        await approvers_repo.create(conn, guardian)
        await approvers_repo.create(conn, dpo)
        assert await approvers_repo.get(conn, "cg-0001") == guardian
        assert await approvers_repo.get(conn, "CG-0001") is None  # the caller normalises
        assert await approvers_repo.all_approvers(conn) == [guardian, dpo]
        assert await approvers_repo.remove(conn, "dpo-0002")
        assert not await approvers_repo.remove(conn, "dpo-0002")
        assert await approvers_repo.all_approvers(conn) == [guardian]

    async with open_store(database_url) as store:
        await store.write(work)


async def test_decisions_keep_login_role_narrowing_and_a_denial_destroys_the_held_copy(
    database_url: str, tmp_path: Path
) -> None:
    prot = protection(tmp_path)
    new = new_disclosure(prot)
    narrowed = approvals.Approval(
        new.id, FACTS, "denied", "CG-0001", "ok", T0, "jsmith", "dpo", ("identity.name",)
    )
    earlier = approvals.Approval(new.id, FACTS, "rejected", "IG", "no", T0)  # no login recorded

    async def work(conn: Connection) -> None:
        await disclosures.record_held(conn, new, request=b"{}", protection=prot, actor=ADMIN, at=T0)
        await approvals.record(conn, narrowed)
        await approvals.record(conn, earlier)
        with pytest.raises(ValueError, match="decision must be"):
            await approvals.record(conn, approvals.Approval(new.id, {}, "maybe", "x", "", T0))
        await disclosures.transition(
            conn,
            new.id,
            Status.DENIED,
            event_type="denied",
            actor=ADMIN,
            at=T0,
            changes={"decision_reasons": ["client_not_authorised"]},
        )

    async with open_store(database_url) as store:
        await store.write(work)
        async with store.read() as conn:
            recorded = await approvals.for_disclosure(conn, new.id)
            found = await disclosures.get(conn, new.id)
            held = (await conn.execute(select(held_records))).all()
    assert sorted(recorded, key=lambda a: a.decision) == [narrowed, earlier]
    assert found is not None
    assert (found.status, found.decision_reasons) == (Status.DENIED, ("client_not_authorised",))
    assert held == []


async def test_register_use_case_writes_with_its_audit_entry_or_nothing(
    database_url: str,
) -> None:
    catalog = load_catalog(default_catalog_dir())
    async with open_store(database_url) as store:
        await apply_catalog(store, catalog, actor=ADMIN, at=T0)
        before = await _audit_count(store)
        added = await add_approver(
            store, "  CG-0001 ", ["KM-POL-S2-011"], role="caldicott_guardian", actor=ADMIN, at=T0
        )
        assert (added.name_key, added.name) == ("cg-0001", "CG-0001")
        with pytest.raises(ApproverExistsError):
            await add_approver(store, "cg-0001", ["KM-DWP-FR-012"], role=None, actor=ADMIN, at=T0)
        with pytest.raises(AgreementNotFoundError):
            await add_approver(store, "dpo-1", ["NO-SUCH-1"], role="dpo", actor=ADMIN, at=T0)
        assert [a.name for a in await list_approvers(store)] == ["CG-0001"]
        assert await _audit_count(store) == before + 1
        removed = await remove_approver(store, "Cg-0001", actor=ADMIN, at=T0)
        assert removed == added
        with pytest.raises(ApproverNotFoundError):
            await remove_approver(store, "cg-0001", actor=ADMIN, at=T0)
        assert await list_approvers(store) == []
        assert await _audit_count(store) == before + 2


async def test_decisions_recorded_before_approvers_read_back_after_it(
    database_url: str, tmp_path: Path
) -> None:
    prot = protection(tmp_path)
    new = new_disclosure(prot)
    store = await Store.open(database_url)
    try:
        await store.upgrade()
        await _downgrade(store, "0004_fields_refused")

        async def old_row(conn: Connection) -> None:
            await disclosures.record_held(
                conn, new, request=b"{}", protection=prot, actor=ADMIN, at=T0
            )
            await conn.execute(
                approvals.approvals.insert().values(
                    disclosure_id=new.id,
                    facts=FACTS,
                    decision="approved",
                    actor="IG",
                    reason="ok",
                    decided_at=T0,
                )
            )

        await store.write(old_row)  # the insert names only the columns before 0004 has
        await store.upgrade()
        async with store.read() as conn:
            [read] = await approvals.for_disclosure(conn, new.id)
            assert (await conn.execute(select(approvers))).all() == []
    finally:
        await store.close()
    assert (read.decision, read.login, read.role, read.fields_granted) == (
        "approved",
        None,
        None,
        None,
    )


async def _audit_count(store: Store) -> int:
    async with store.read() as conn:
        total = 0
        for table in (audit_log, audit_pending):
            total += len((await conn.execute(select(table.c.action))).all())
    return total


async def _downgrade(store: Store, revision: str) -> None:
    def work(connection: SyncConnection) -> None:
        config = migrate.alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    async with store.engine.connect() as conn:
        await conn.execution_options(**{WRITE_OPTION: True})
        async with conn.begin():
            await conn.run_sync(work)
