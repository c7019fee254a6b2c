"""Client systems use cases against in-memory fakes: rules, one unit of work, audit entries."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pytest

from gateway.agreement_lifecycle import AgreementNotFoundError
from gateway.application.client_systems import (
    ClientExistsError,
    ClientNameInvalidError,
    ClientNotFoundError,
    ClientRevokedError,
    add_client,
    list_clients,
    revoke_client,
    rotate_client_token,
)
from gateway.clients import hash_token
from gateway.store.agreements_repo import StoredAgreement
from gateway.store.clients_repo import StoredClient
from gateway.store.unit_of_work import Connection
from tests.unit.admin_fakes import ADMIN, NOW, FakeAuditTrail, FakeStore

KNOWN = ("KM-GP-005", "KM-NHS-LAC-001")


@dataclass
class FakeClients:
    """The clients table: name -> (stored client, token hash)."""

    rows: dict[str, tuple[StoredClient, str]] = field(default_factory=dict)

    async def get(self, conn: Connection, name: str) -> StoredClient | None:
        found = self.rows.get(name)
        return found[0] if found else None

    async def create(
        self,
        conn: Connection,
        name: str,
        *,
        token_hash: str,
        allowed_agreements: frozenset[str],
        at: datetime,
        token_expires_at: datetime | None = None,
        cert_sha256: str | None = None,
    ) -> None:
        stored = StoredClient(
            name, allowed_agreements, "active", at, None, token_expires_at, cert_sha256
        )
        self.rows[name] = (stored, token_hash)

    async def rotate(
        self,
        conn: Connection,
        name: str,
        *,
        token_hash: str,
        at: datetime,
        token_expires_at: datetime | None = None,
    ) -> bool:
        client, _ = self.rows[name]
        changed = dataclasses.replace(client, rotated_at=at, token_expires_at=token_expires_at)
        self.rows[name] = (changed, token_hash)
        return True

    async def set_cert(self, conn: Connection, name: str, fingerprint: str | None) -> bool:
        client, token_hash = self.rows[name]
        self.rows[name] = (dataclasses.replace(client, cert_sha256=fingerprint), token_hash)
        return True

    async def set_status(self, conn: Connection, name: str, status: str) -> bool:
        client, token_hash = self.rows[name]
        self.rows[name] = (dataclasses.replace(client, status=status), token_hash)
        return True

    async def all_clients(self, conn: Connection) -> list[StoredClient]:
        return [client for client, _ in sorted(self.rows.values(), key=lambda r: r[0].name)]


class FakeAgreements:
    async def get(
        self, conn: Connection, id_: str, version: int | None = None
    ) -> StoredAgreement | None:
        if id_ not in KNOWN:
            return None
        return StoredAgreement(
            id_, 1, "active", "medway-ft", date(2026, 1, 1), None, None, {}, "h", "t", NOW
        )


@dataclass
class Ports:
    clients: FakeClients
    trail: FakeAuditTrail
    store: FakeStore
    tokens: itertools.count[int]

    async def add(self, name: str, agreements: tuple[str, ...] = KNOWN) -> str:
        issued = await add_client(
            self.store,
            name,
            agreements,
            stored_agreements=FakeAgreements(),
            make_token=self.token,
            **self.ports(),
        )
        return issued.token

    async def rotate(self, name: str) -> str:
        issued = await rotate_client_token(self.store, name, make_token=self.token, **self.ports())
        return issued.token

    async def revoke(self, name: str) -> None:
        await revoke_client(self.store, name, **self.ports())

    def ports(self) -> dict[str, Any]:
        return {"actor": ADMIN, "at": NOW, "clients": self.clients, "audit_entry": self.trail}

    def token(self) -> str:
        return f"token-{next(self.tokens)}"


@pytest.fixture
def ports() -> Ports:
    clients, trail = FakeClients(), FakeAuditTrail()
    return Ports(clients, trail, FakeStore(clients, trail), itertools.count(1))


async def test_add_stores_only_the_hash_and_audits_the_agreements(ports: Ports) -> None:
    token = await ports.add("mosaic-childrens", ("KM-NHS-LAC-001", "KM-GP-005", "KM-GP-005"))
    client, stored_hash = ports.clients.rows["mosaic-childrens"]
    assert (token, stored_hash) == ("token-1", hash_token("token-1"))
    assert client.allowed_agreements == frozenset(KNOWN)
    [entry] = ports.trail.rows
    assert (entry.action, entry.actor, entry.targets) == (
        "client.added",
        ADMIN,
        {"client": "mosaic-childrens"},
    )
    assert entry.details == {"agreements": ["KM-GP-005", "KM-NHS-LAC-001"]}
    assert token not in repr(ports.trail.rows)
    assert ports.store.commits == 1


async def test_add_refuses_a_taken_name_an_unknown_agreement_and_a_bad_name(ports: Ports) -> None:
    await ports.add("lcs-adults")
    with pytest.raises(ClientExistsError) as exists:
        await ports.add("lcs-adults")
    assert exists.value.code == "client_exists"
    with pytest.raises(AgreementNotFoundError, match="NO-SUCH"):
        await ports.add("other", ("KM-GP-005", "NO-SUCH"))
    with pytest.raises(ClientNameInvalidError):
        await ports.add("bad name!")
    assert list(ports.clients.rows) == ["lcs-adults"]  # the refusals wrote nothing
    assert ports.trail.actions == ["client.added"]


async def test_rotate_replaces_the_hash_and_revoke_is_for_good(ports: Ports) -> None:
    first = await ports.add("mosaic")
    second = await ports.rotate("mosaic")
    assert second != first
    assert ports.clients.rows["mosaic"][1] == hash_token(second)
    assert ports.clients.rows["mosaic"][0].rotated_at == NOW

    await ports.revoke("mosaic")
    [listed] = await list_clients(ports.store, clients=ports.clients)
    assert listed.status == "revoked"
    with pytest.raises(ClientRevokedError):
        await ports.revoke("mosaic")
    with pytest.raises(ClientRevokedError):
        await ports.rotate("mosaic")
    with pytest.raises(ClientNotFoundError):
        await ports.revoke("nobody")
    assert ports.trail.actions == ["client.added", "client.rotated", "client.revoked"]
