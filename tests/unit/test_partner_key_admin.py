"""Partner key use cases against in-memory fakes: a kid once per partner, revocation for good."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from gateway.application.partner_key_admin import (
    PartnerKeyAlreadyRevokedError,
    PartnerKeyExistsError,
    PartnerKeyNoSuccessorError,
    PartnerKeyNotActiveError,
    PartnerKeyNotFoundError,
    PartnerKeyRetireDateError,
    PartnerNotFoundError,
    add_partner_key,
    partner_keys,
    retire_partner_key,
    revoke_partner_key,
    usable_at,
)
from gateway.audit import Actor
from gateway.partner_keys import PartnerKey, generate_partner_keys, public_jwk
from gateway.store.partners_repo import StoredPartner, StoredPartnerKey
from gateway.store.unit_of_work import Connection
from tests.unit.admin_fakes import ADMIN, NOW, FakeAuditTrail, FakeStore

POLICE = "kent-police"


@dataclass
class FakePartners:
    """One partner and its key rows, in registration order."""

    rows: list[StoredPartnerKey] = field(default_factory=list)

    async def get_partner(self, conn: Connection, id_: str) -> StoredPartner | None:
        return (
            StoredPartner(POLICE, "Kent Police", "police", "webhook", {}) if id_ == POLICE else None
        )

    async def keys_of(self, conn: Connection, partner_id: str) -> list[StoredPartnerKey]:
        return [k for k in self.rows if k.partner_id == partner_id]

    async def add_key(self, conn: Connection, key: StoredPartnerKey, *, at: datetime) -> None:
        self.rows.append(key)

    async def revoke_key(self, conn: Connection, partner_id: str, kid: str, reason: str) -> bool:
        self.rows = [
            dataclasses.replace(k, status="revoked", revoked_reason=reason) if k.kid == kid else k
            for k in self.rows
        ]
        return True

    async def retire_key(
        self, conn: Connection, partner_id: str, kid: str, until: datetime
    ) -> bool:
        self.rows = [
            dataclasses.replace(k, status="retired", not_after=until) if k.kid == kid else k
            for k in self.rows
        ]
        return True

    async def usable_keys(
        self, conn: Connection, partner_id: str, use: str, *, at: datetime
    ) -> list[StoredPartnerKey]:
        return [
            k for k in await self.keys_of(conn, partner_id) if k.use == use and usable_at(k, at)
        ]


@dataclass
class FakeEnvelopes:
    """Undelivered envelopes by the key they are sealed to: kid -> disclosure ids."""

    sealed: dict[str, list[str]] = field(default_factory=dict)
    held: list[tuple[str, str]] = field(default_factory=list)  # (disclosure id, reason)

    async def hold_sealed_to(
        self,
        conn: Connection,
        partner_id: str,
        kid: str,
        *,
        reason: str,
        at: datetime,
        actor: Actor,
    ) -> list[str]:
        ids = self.sealed.pop(kid, [])
        self.held += [(i, reason) for i in ids]
        return ids


@dataclass
class Desk:
    partners: FakePartners
    trail: FakeAuditTrail
    store: FakeStore
    envelopes: FakeEnvelopes = field(default_factory=FakeEnvelopes)

    def ports(self) -> dict[str, Any]:
        return {"actor": ADMIN, "at": NOW, "partners": self.partners, "audit_entry": self.trail}

    async def add(self, key: PartnerKey) -> StoredPartnerKey:
        return await add_partner_key(self.store, key, **self.ports())

    async def revoke(self, kid: str, partner_id: str = POLICE) -> Any:
        return await revoke_partner_key(
            self.store, partner_id, kid, "compromised", envelopes=self.envelopes, **self.ports()
        )

    async def retire(self, kid: str, until: datetime) -> Any:
        return await retire_partner_key(self.store, POLICE, kid, until, **self.ports())


@pytest.fixture
def desk() -> Desk:
    partners, trail = FakePartners(), FakeAuditTrail()
    return Desk(partners, trail, FakeStore(partners, trail))


def police_key(use: str = "enc", **window: datetime) -> PartnerKey:
    enc, sig = generate_partner_keys("ec")
    return PartnerKey.from_jwk(POLICE, public_jwk(enc if use == "enc" else sig), use=use, **window)


async def test_add_registers_from_now_and_audits_the_window(desk: Desk) -> None:
    key = police_key(not_after=NOW + timedelta(days=30))
    row = await desk.add(key)
    assert (row.kid, row.not_before, row.status) == (key.kid, NOW, "active")
    assert desk.partners.rows == [row]
    [entry] = desk.trail.rows
    assert (entry.action, entry.targets) == (
        "partner_key.added",
        {"partner": POLICE, "kid": key.kid},
    )
    assert entry.details == {
        "use": "enc",
        "alg": "ECDH-ES+A256KW",
        "not_after": (NOW + timedelta(days=30)).isoformat(),
    }


async def test_a_kid_is_registered_once_and_only_for_a_stored_partner(desk: Desk) -> None:
    key = police_key()
    await desk.add(key)
    await desk.revoke(key.kid)
    with pytest.raises(PartnerKeyExistsError, match="never registered again"):
        await desk.add(key)  # not even after it was revoked
    stranger = PartnerKey.from_jwk("nobody", key.jwk, use="enc")
    with pytest.raises(PartnerNotFoundError):
        await desk.add(stranger)
    assert len(desk.partners.rows) == 1
    assert desk.trail.actions == ["partner_key.added", "partner_key.revoked"]


async def test_revoke_reports_the_encryption_keys_left(desk: Desk) -> None:
    first, second, sig = police_key(), police_key(), police_key("sig")
    for key in (first, second, sig):
        await desk.add(key)
    assert (await desk.revoke(first.kid)).usable_enc_keys == 1
    revoked = await desk.revoke(second.kid)
    assert (revoked.use, revoked.usable_enc_keys) == ("enc", 0)
    with pytest.raises(PartnerKeyAlreadyRevokedError):
        await desk.revoke(first.kid)
    with pytest.raises(PartnerKeyNotFoundError):
        await desk.revoke("no-such-kid")
    with pytest.raises(PartnerNotFoundError):
        await partner_keys(desk.store, "nobody", partners=desk.partners)
    stored = await partner_keys(desk.store, POLICE, partners=desk.partners)
    assert [(k.kid, k.status) for k in stored] == [
        (first.kid, "revoked"),
        (second.kid, "revoked"),
        (sig.kid, "active"),
    ]
    assert desk.trail.rows[-1].details == {
        "use": "enc",
        "reason": "compromised",
        "envelopes_held": 0,
    }


async def test_revoking_an_encryption_key_holds_what_was_sealed_to_it(desk: Desk) -> None:
    enc, sig = police_key(), police_key("sig")
    for key in (enc, sig):
        await desk.add(key)
    desk.envelopes.sealed = {enc.kid: ["d-1", "d-2"], sig.kid: ["never"]}
    revoked = await desk.revoke(enc.kid)
    assert revoked.held == ("d-1", "d-2")
    assert desk.envelopes.held == [("d-1", "partner_key_revoked"), ("d-2", "partner_key_revoked")]
    assert desk.trail.rows[-1].details["envelopes_held"] == 2
    assert (await desk.revoke(sig.kid)).held == ()  # a signing key seals nothing


async def test_retire_keeps_a_key_until_its_date_once_a_newer_one_exists(desk: Desk) -> None:
    old, new = police_key(), police_key()
    await desk.add(old)
    with pytest.raises(PartnerKeyNoSuccessorError):
        await desk.retire(old.kid, NOW + timedelta(days=7))
    await desk.add(new)
    with pytest.raises(PartnerKeyRetireDateError):
        await desk.retire(old.kid, NOW)
    retired = await desk.retire(old.kid, NOW + timedelta(days=7))
    assert (retired.kid, retired.until) == (old.kid, NOW + timedelta(days=7))
    stored = {k.kid: k for k in desk.partners.rows}
    assert (stored[old.kid].status, stored[old.kid].not_after) == (
        "retired",
        NOW + timedelta(days=7),
    )
    assert desk.trail.rows[-1].action == "partner_key.retired"
    with pytest.raises(PartnerKeyNotActiveError):
        await desk.retire(old.kid, NOW + timedelta(days=8))


async def test_retiring_never_extends_a_key(desk: Desk) -> None:
    short = police_key(not_after=NOW + timedelta(days=2))
    await desk.add(short)
    await desk.add(police_key())
    retired = await desk.retire(short.kid, NOW + timedelta(days=30))
    assert retired.until == NOW + timedelta(days=2)
