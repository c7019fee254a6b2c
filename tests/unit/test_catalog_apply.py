"""Applying a catalog against in-memory fakes: one unit of work, audited, nothing on a refusal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from agreements.loader import default_catalog_dir, load_catalog
from agreements.model import Catalog
from gateway.application.catalog_apply import apply_catalog, plan_catalog
from gateway.audit import Actor
from gateway.catalog_sync import CatalogRefusedError, Plan, agreement_record, partner_record
from gateway.store.agreements_repo import StoredAgreement
from gateway.store.partners_repo import StoredPartner
from gateway.store.unit_of_work import Connection
from tests.unit.admin_fakes import ADMIN, CONN, NOW, Entry, FakeStore

R = TypeVar("R")
LAC = "KM-NHS-LAC-001"
SEALED = "sealed"  # where the audit log chained what was appended before it


@dataclass
class FakeVersions:
    """The agreements table: (id, version) -> stored version."""

    rows: dict[tuple[str, int], StoredAgreement] = field(default_factory=dict)

    async def current(self, conn: Connection) -> list[StoredAgreement]:
        newest: dict[str, StoredAgreement] = {}
        for stored in self.rows.values():
            if stored.id not in newest or stored.version > newest[stored.id].version:
                newest[stored.id] = stored
        return [newest[key] for key in sorted(newest)]

    async def save(self, conn: Connection, agreement: StoredAgreement) -> bool:
        assert conn is CONN
        key = (agreement.id, agreement.version)
        if key in self.rows:
            return False
        self.rows[key] = agreement
        return True


@dataclass
class FakePartners:
    """The partners table by id."""

    rows: dict[str, StoredPartner] = field(default_factory=dict)

    async def all_partners(self, conn: Connection) -> list[StoredPartner]:
        return [self.rows[key] for key in sorted(self.rows)]

    async def save_partner(self, conn: Connection, partner: StoredPartner, *, at: Any) -> None:
        assert conn is CONN
        self.rows[partner.id] = partner


@dataclass
class FakeAuditLog:
    """Appended entries, with SEALED where the work chained them."""

    rows: list[Entry | str] = field(default_factory=list)

    async def append(
        self,
        conn: Connection,
        actor: Actor,
        action: str,
        *,
        at: Any,
        targets: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self.rows.append(Entry(actor, action, at, dict(targets or {}), dict(details or {})))

    async def seal(self, conn: Connection, *, at: Any) -> int:
        self.rows.append(SEALED)
        return 0

    @property
    def entries(self) -> list[Entry]:
        return [row for row in self.rows if isinstance(row, Entry)]


class RerunningStore(FakeStore):
    """Runs each unit of work, rolls it back, and runs it again: a batch that failed once."""

    async def write(self, work: Callable[[Connection], Awaitable[R]]) -> R:
        with pytest.raises(RuntimeError):
            await super().write(_then_fail(work))
        return await super().write(work)


def _then_fail(work: Callable[[Connection], Awaitable[R]]) -> Callable[[Connection], Awaitable[R]]:
    async def failing(conn: Connection) -> R:
        await work(conn)
        raise RuntimeError("the batch this work joined failed")

    return failing


@dataclass
class Ports:
    versions: FakeVersions
    partners: FakePartners
    audit: FakeAuditLog
    store: FakeStore

    async def apply(self, catalog: Catalog) -> Plan:
        return await apply_catalog(
            self.store,
            catalog,
            actor=ADMIN,
            at=NOW,
            agreements=self.versions,
            partners=self.partners,
            audit=self.audit,
        )


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(default_catalog_dir())


def ports(
    versions: FakeVersions | None = None,
    partners: FakePartners | None = None,
    store: type[FakeStore] = FakeStore,
) -> Ports:
    tables = (versions or FakeVersions(), partners or FakePartners(), FakeAuditLog())
    return Ports(*tables, store(*tables))


def all_partners(catalog: Catalog) -> FakePartners:
    """The catalog's partners as stored."""
    return FakePartners({id_: partner_record(x) for id_, x in catalog.partners.items()})


def stored(catalog: Catalog, **lac_changes: object) -> FakeVersions:
    """The catalog as stored, with LAC's stored version changed."""
    versions = FakeVersions()
    for agreement in catalog.agreements.values():
        kept = agreement.model_copy(update=lac_changes) if agreement.id == LAC else agreement
        versions.rows[(kept.id, kept.version)] = agreement_record(
            kept, applied_by="earlier", at=NOW
        )
    return versions


async def test_an_empty_store_takes_everything_in_one_audited_unit_of_work(
    catalog: Catalog,
) -> None:
    p = ports()
    result = await p.apply(catalog)
    assert result.ok
    assert result.changed
    assert p.store.commits == 1
    assert p.partners.rows == all_partners(catalog).rows
    assert p.versions.rows == {
        (a.id, a.version): agreement_record(a, applied_by=ADMIN.name, at=NOW)
        for a in catalog.agreements.values()
    }
    saved, applied = len(catalog.partners), len(catalog.agreements)
    actions = [e.action for e in p.audit.entries]
    assert actions == ["partner.saved"] * saved + ["agreement.applied"] * applied
    assert p.audit.rows.index(SEALED) == len(p.audit.rows) - 1  # chained once, at the end
    lac = next(e for e in p.audit.entries if e.targets.get("agreement") == LAC)
    assert lac.targets == {"agreement": LAC, "partner": catalog.agreements[LAC].partner}
    assert lac.details["previous_version"] is None
    assert lac.details["changed_fields_total"] == 0


async def test_re_applying_the_same_catalog_writes_nothing(catalog: Catalog) -> None:
    p = ports()
    await p.apply(catalog)
    p.audit.rows.clear()
    result = await p.apply(catalog)
    assert result.ok
    assert not result.changed
    assert p.audit.entries == []


async def test_a_new_version_is_audited_with_the_names_of_its_changed_fields(
    catalog: Catalog,
) -> None:
    lac = catalog.agreements[LAC]
    p = ports(
        stored(catalog, version=lac.version - 1, title="An older title"), all_partners(catalog)
    )
    await p.apply(catalog)
    [entry] = p.audit.entries
    assert (entry.action, entry.targets["agreement"]) == ("agreement.applied", LAC)
    assert entry.details["previous_version"] == lac.version - 1
    assert entry.details["changed_fields"] == ["title"]
    assert "An older title" not in repr(entry.details)  # names of fields, never their values
    assert (LAC, lac.version) in p.versions.rows


async def test_a_refusal_writes_nothing_and_carries_the_plan(catalog: Catalog) -> None:
    p = ports(stored(catalog, title="Changed in the store"))
    before = dict(p.versions.rows)
    with pytest.raises(CatalogRefusedError) as refused:
        await p.apply(catalog)
    assert [r.code for r in refused.value.plan.refusals] == [
        "agreement_changed_without_new_version"
    ]
    assert p.partners.rows == {}
    assert p.versions.rows == before
    assert p.audit.rows == []
    assert p.store.commits == 0


async def test_the_work_can_be_run_again_after_its_batch_failed(catalog: Catalog) -> None:
    once, rerun = ports(), ports(store=RerunningStore)
    assert await once.apply(catalog) == await rerun.apply(catalog)
    assert rerun.store.commits == 1
    assert (rerun.versions.rows, rerun.partners.rows) == (once.versions.rows, once.partners.rows)
    assert rerun.audit.rows == once.audit.rows


async def test_the_dry_run_plans_against_the_store_and_writes_nothing(catalog: Catalog) -> None:
    p = ports(stored(catalog, title="Changed in the store"))
    result = await plan_catalog(p.store, catalog, agreements=p.versions, partners=p.partners)
    assert not result.ok
    assert {c.kind for c in result.partners} == {"new_partner"}
    assert p.store.commits == 0
    assert p.audit.rows == []
