"""Agreement status changes and the due report against in-memory fakes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pytest

from gateway.agreement_lifecycle import AgreementNotFoundError, AgreementStatusError
from gateway.application.agreement_register import (
    agreement_versions,
    agreements_due,
    change_agreement_status,
)
from gateway.partner_keys import PartnerKey, generate_partner_keys, public_jwk
from gateway.store.agreements_repo import StoredAgreement
from gateway.store.partners_repo import StoredPartnerKey
from gateway.store.unit_of_work import Connection
from tests.unit.admin_fakes import ADMIN, NOW, FakeAuditTrail, FakeStore


def version(number: int, status: str = "active", **dates: date) -> StoredAgreement:
    return StoredAgreement(
        "KM-POL-SG-018",
        number,
        status,
        "kent-police",
        date(2026, 1, 1),
        dates.get("ends"),
        dates.get("review"),
        {},
        f"h{number}",
        "ig",
        NOW,
    )


@dataclass
class FakeAgreements:
    rows: list[StoredAgreement] = field(default_factory=list)

    async def get(
        self, conn: Connection, id_: str, version: int | None = None
    ) -> StoredAgreement | None:
        found = [a for a in self.rows if a.id == id_ and version in (None, a.version)]
        return max(found, key=lambda a: a.version) if found else None

    async def set_status(self, conn: Connection, id_: str, version: int, status: str) -> bool:
        self.rows = [
            dataclasses.replace(a, status=status) if (a.id, a.version) == (id_, version) else a
            for a in self.rows
        ]
        return True

    async def current(self, conn: Connection) -> list[StoredAgreement]:
        newest = {a.id: a for a in sorted(self.rows, key=lambda a: a.version)}
        return sorted(newest.values(), key=lambda a: a.id)

    async def versions(self, conn: Connection, id_: str) -> list[StoredAgreement]:
        return sorted((a for a in self.rows if a.id == id_), key=lambda a: a.version)


@dataclass
class FakeKeys:
    rows: dict[str, list[StoredPartnerKey]] = field(default_factory=dict)

    async def keys_of(self, conn: Connection, partner_id: str) -> list[StoredPartnerKey]:
        return self.rows.get(partner_id, [])


async def test_suspend_changes_the_newest_version_and_audits_why() -> None:
    agreements, trail = FakeAgreements([version(1), version(2)]), FakeAuditTrail()
    store = FakeStore(agreements, trail)
    change = await change_agreement_status(
        store,
        "KM-POL-SG-018",
        "suspend",
        "partner breach",
        actor=ADMIN,
        at=NOW,
        agreements=agreements,
        audit_entry=trail,
    )
    assert (change.version, change.from_status, change.to_status) == (2, "active", "suspended")
    assert [a.status for a in agreements.rows] == ["active", "suspended"]
    [entry] = trail.rows
    assert (entry.action, entry.targets) == (
        "agreement.suspended",
        {"agreement": "KM-POL-SG-018", "partner": "kent-police"},
    )
    assert entry.details == {
        "version": 2,
        "from": "active",
        "to": "suspended",
        "reason": "partner breach",
    }


@pytest.mark.parametrize(
    ("agreement_id", "error"),
    [("KM-POL-SG-018", AgreementStatusError), ("NO-SUCH", AgreementNotFoundError)],
)
async def test_a_refused_change_writes_nothing(agreement_id: str, error: type[Exception]) -> None:
    agreements, trail = FakeAgreements([version(1, "terminated")]), FakeAuditTrail()
    with pytest.raises(error):
        await change_agreement_status(
            FakeStore(agreements, trail),
            agreement_id,
            "resume",
            "why",
            actor=ADMIN,
            at=NOW,
            agreements=agreements,
            audit_entry=trail,
        )
    assert [a.status for a in agreements.rows] == ["terminated"]
    assert trail.rows == []


class NoEmailPartners:
    """None of the partners is reached by email."""

    async def email_partners_certs(self, conn: object, partner_ids: object) -> dict[str, list[Any]]:
        return {}


async def test_due_lists_dates_and_skips_keys_that_no_longer_load() -> None:
    agreements = FakeAgreements([version(1, ends=NOW.date() + timedelta(days=10))])
    private, _ = generate_partner_keys("ec")
    good = PartnerKey.from_jwk("kent-police", public_jwk(private), use="enc")
    broken = dataclasses.replace(good.to_store(registered_at=NOW), jwk={"kty": "oct"})
    keys = FakeKeys({"kent-police": [broken]})
    store = FakeStore()
    due = await agreements_due(
        store, now=NOW, days=30, agreements=agreements, partners=keys, email=NoEmailPartners()
    )
    assert [(i.kind, i.days_left) for i in due] == [
        ("partner_key_missing", None),
        ("effective_to", 10),
    ]
    keys.rows["kent-police"].append(good.to_store(registered_at=NOW - timedelta(days=1)))
    due = await agreements_due(
        store, now=NOW, days=30, agreements=agreements, partners=keys, email=NoEmailPartners()
    )
    assert [i.kind for i in due] == ["effective_to"]
    with pytest.raises(AgreementNotFoundError):
        await agreement_versions(store, "NO-SUCH", agreements=agreements)
