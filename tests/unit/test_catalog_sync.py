"""The pure plan of a catalog against stored versions, and the field-by-field diff."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from agreements.loader import default_catalog_dir, load_catalog
from agreements.model import Catalog
from gateway.catalog_sync import (
    agreement_from_record,
    agreement_record,
    diff_documents,
    partner_from_record,
    partner_record,
    plan,
)

AT = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
LAC = "KM-NHS-LAC-001"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(default_catalog_dir())


def stored(catalog: Catalog, **changes: object) -> list:  # type: ignore[type-arg]
    """The whole catalog as stored, with LAC's stored copy changed."""
    records = []
    for agreement in catalog.agreements.values():
        changed = agreement.model_copy(update=changes) if agreement.id == LAC else agreement
        records.append(agreement_record(changed, applied_by="ig", at=AT))
    return records


def partners(catalog: Catalog) -> list:  # type: ignore[type-arg]
    return [partner_record(p) for p in catalog.partners.values()]


def test_everything_is_new_on_an_empty_store(catalog: Catalog) -> None:
    result = plan(catalog, [], [])
    assert result.ok
    assert result.changed
    assert {a.kind for a in result.agreements} == {"new_agreement"}
    assert {p.kind for p in result.partners} == {"new_partner"}


def test_the_same_catalog_is_unchanged(catalog: Catalog) -> None:
    result = plan(catalog, stored(catalog), partners(catalog))
    assert result.ok
    assert not result.changed
    assert {a.kind for a in result.agreements} == {"unchanged"}


def test_an_older_stored_version_gives_a_new_version_with_its_diff(catalog: Catalog) -> None:
    lac = catalog.agreements[LAC]
    older = stored(catalog, version=2, review_due=date(2026, 12, 1), purposes=())
    result = plan(catalog, older, partners(catalog))
    change = {a.id: a for a in result.agreements}[LAC]
    assert (change.kind, change.stored_version, change.version) == ("new_version", 2, 3)
    assert [(c.field, c.change, c.before, c.after) for c in change.changes] == [
        ("review_due", "changed", "2026-12-01", lac.review_due.isoformat()),
        ("purposes", "added", None, "looked_after_children_health"),
    ]


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"title": "Changed in the store"}, "agreement_changed_without_new_version"),
        ({"version": 9}, "agreement_version_lowered"),
    ],
)
def test_refusals(catalog: Catalog, changes: dict[str, object], code: str) -> None:
    result = plan(catalog, stored(catalog, **changes), partners(catalog))
    assert not result.ok
    assert [(r.agreement_id, r.code) for r in result.refusals] == [(LAC, code)]
    assert {a.id: a for a in result.agreements}[LAC].kind == "refused"


def test_stored_agreements_missing_from_the_catalog_are_listed(catalog: Catalog) -> None:
    extra = agreement_record(
        catalog.agreements[LAC].model_copy(update={"id": "OLD-001"}), applied_by="ig", at=AT
    )
    assert plan(catalog, [*stored(catalog), extra], partners(catalog)).not_in_catalog == (
        "OLD-001",
    )


def test_a_changed_or_missing_partner_contact_updates_the_partner(catalog: Catalog) -> None:
    stored_partners = [
        replace(p, dpo_contact="old.dpo@kmmh.example") if p.id == "kmmh" else
        replace(p, ods_code=None) if p.id == "km-icb" else p
        for p in partners(catalog)
    ]  # fmt: skip
    result = plan(catalog, stored(catalog), stored_partners)
    moving = {p.id: p for p in result.partners if p.kind != "unchanged"}
    assert {pid: p.kind for pid, p in moving.items()} == {"kmmh": "updated", "km-icb": "updated"}
    assert [c.to_dict() for c in moving["kmmh"].changes] == [
        {"field": "dpo_contact", "change": "changed", "before": "old.dpo@kmmh.example",
         "after": "dpo@kmmh.example"}
    ]  # fmt: skip
    assert [(c.field, c.change) for c in moving["km-icb"].changes] == [("ods_code", "added")]


def test_diff_of_rules_names_each_rule_by_path() -> None:
    before = {"fields": [{"path": "a.b"}, {"path": "c", "purposes": ["research"]}]}
    after = {"fields": [{"path": "a.b", "transform": "year_only"}, {"path": "d"}]}
    assert [(c.field, c.change) for c in diff_documents(before, after)] == [
        ("fields[a.b].transform", "changed"),
        ("fields[d]", "added"),
        ("fields[c]", "removed"),
    ]
    basis = diff_documents(
        {"lawful_basis": {"article_9": "h"}}, {"lawful_basis": {"article_9": "g"}}
    )
    assert basis[0].field == "lawful_basis.article_9"


def test_records_convert_both_ways(catalog: Catalog) -> None:
    for partner in catalog.partners.values():
        assert partner_from_record(partner_record(partner)) == partner  # contacts included
    assert partner_record(catalog.partners["medway-ft"]).dpo_contact == "dpo@medway-ft.example"
    lac = catalog.agreements[LAC]
    record = agreement_record(lac, applied_by="ig", at=AT)
    assert agreement_from_record(record) == lac
    assert agreement_from_record(replace(record, status="suspended")).status == "suspended"
