"""Client systems: the internal systems that may submit disclosures, and their bearer tokens.

A token is shown once and stored only as its hash: nobody can read it back, so a lost token is
replaced (`rotate_client_token`), and a retired system is revoked for good.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from gateway.agreement_lifecycle import AgreementNotFoundError
from gateway.application.admin_ports import AuditTrail, StorePort, chained_entry
from gateway.audit import Actor
from gateway.clients import hash_token, new_token
from gateway.errors import ConflictError, GatewayError, NotFoundError
from gateway.store import agreements_repo, clients_repo
from gateway.store.agreements_repo import StoredAgreement
from gateway.store.clients_repo import StoredClient
from gateway.store.unit_of_work import Connection

CLIENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$")


class ClientNameInvalidError(GatewayError):
    """A client name must be a short identifier (it appears in logs and audit entries)."""

    code = "client_name_invalid"


class ClientExistsError(ConflictError):
    """A client with this name is already registered."""

    code = "client_exists"


class ClientNotFoundError(NotFoundError):
    """No client with this name is registered."""

    code = "client_not_found"


class ClientRevokedError(ConflictError):
    """The client is revoked for good; register a new one instead."""

    code = "client_revoked"


class ClientRecords(Protocol):
    """The client rows (`gateway.store.clients_repo`)."""

    async def get(self, conn: Connection, name: str) -> StoredClient | None: ...

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
    ) -> None: ...

    async def rotate(
        self,
        conn: Connection,
        name: str,
        *,
        token_hash: str,
        at: datetime,
        token_expires_at: datetime | None = None,
    ) -> bool: ...

    async def set_status(self, conn: Connection, name: str, status: str) -> bool: ...

    async def set_cert(self, conn: Connection, name: str, fingerprint: str | None) -> bool: ...

    async def all_clients(self, conn: Connection) -> list[StoredClient]: ...


class AgreementLookup(Protocol):
    """Stored agreements by id (`gateway.store.agreements_repo`)."""

    async def get(
        self, conn: Connection, id_: str, version: int | None = None
    ) -> StoredAgreement | None: ...


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A client's new bearer token, to show once: only its hash is stored."""

    client: str
    token: str


def client_name_valid(name: str) -> bool:
    """Letters, digits, '.', '_' and '-', starting with a letter or digit, at most 120."""
    return CLIENT_NAME.match(name) is not None


async def add_client(
    store: StorePort,
    name: str,
    agreements: Iterable[str],
    *,
    actor: Actor,
    at: datetime,
    clients: ClientRecords = clients_repo,
    stored_agreements: AgreementLookup = agreements_repo,
    audit_entry: AuditTrail = chained_entry,
    make_token: Callable[[], str] = new_token,
    expires_in: timedelta | None = None,
    cert_sha256: str | None = None,
) -> IssuedToken:
    """Register a client system allowed to submit under `agreements`; returns its token.

    `expires_in`: the token stops working that long after `at`; `cert_sha256`: the client
    may also authenticate with this client certificate over mutual TLS.
    """
    if not client_name_valid(name):
        raise ClientNameInvalidError(f"client name {name!r} is not a valid identifier")
    ids = sorted(set(agreements))
    token = make_token()

    async def work(conn: Connection) -> None:
        if await clients.get(conn, name) is not None:
            raise ClientExistsError(f"a client named {name!r} exists")
        for agreement_id in ids:
            if await stored_agreements.get(conn, agreement_id) is None:
                raise AgreementNotFoundError(f"no agreement {agreement_id!r} is stored")
        await clients.create(
            conn,
            name,
            token_hash=hash_token(token),
            allowed_agreements=frozenset(ids),
            at=at,
            token_expires_at=None if expires_in is None else at + expires_in,
            cert_sha256=cert_sha256,
        )
        targets: dict[str, str] = {"client": name}
        details: dict[str, object] = {"agreements": ids}
        if cert_sha256 is not None:
            details["certificate"] = True
        if expires_in is not None:
            details["token_expires_at"] = (at + expires_in).isoformat()
        await audit_entry(conn, actor, "client.added", at=at, targets=targets, details=details)

    await store.write(work)
    return IssuedToken(name, token)


async def revoke_client(
    store: StorePort,
    name: str,
    *,
    actor: Actor,
    at: datetime,
    clients: ClientRecords = clients_repo,
    audit_entry: AuditTrail = chained_entry,
) -> None:
    """Stop a client system for good: its token is refused from now on."""

    async def work(conn: Connection) -> None:
        await _active(conn, clients, name)
        await clients.set_status(conn, name, "revoked")
        await audit_entry(conn, actor, "client.revoked", at=at, targets={"client": name})

    await store.write(work)


async def rotate_client_token(
    store: StorePort,
    name: str,
    *,
    actor: Actor,
    at: datetime,
    clients: ClientRecords = clients_repo,
    audit_entry: AuditTrail = chained_entry,
    make_token: Callable[[], str] = new_token,
    expires_in: timedelta | None = None,
) -> IssuedToken:
    """Issue a new token for a client (expiring `expires_in` after `at`, if given); the old one
    stops working when this commits."""
    token = make_token()
    expires_at = None if expires_in is None else at + expires_in

    async def work(conn: Connection) -> None:
        await _active(conn, clients, name)
        await clients.rotate(
            conn, name, token_hash=hash_token(token), at=at, token_expires_at=expires_at
        )
        details = {} if expires_at is None else {"token_expires_at": expires_at.isoformat()}
        await audit_entry(
            conn, actor, "client.rotated", at=at, targets={"client": name}, details=details
        )

    await store.write(work)
    return IssuedToken(name, token)


async def set_client_certificate(
    store: StorePort,
    name: str,
    cert_sha256: str | None,
    *,
    actor: Actor,
    at: datetime,
    clients: ClientRecords = clients_repo,
    audit_entry: AuditTrail = chained_entry,
) -> None:
    """Map a client certificate (its SHA-256 fingerprint) to a client, or remove the mapping."""

    async def work(conn: Connection) -> None:
        await _active(conn, clients, name)
        await clients.set_cert(conn, name, cert_sha256)
        details = {"certificate": cert_sha256 is not None}
        await audit_entry(
            conn, actor, "client.certificate_set", at=at, targets={"client": name}, details=details
        )

    await store.write(work)


async def list_clients(
    store: StorePort, *, clients: ClientRecords = clients_repo
) -> list[StoredClient]:
    """Every client system, by name (token hashes never leave the store)."""
    async with store.read() as conn:
        return await clients.all_clients(conn)


async def _active(conn: Connection, clients: ClientRecords, name: str) -> StoredClient:
    client = await clients.get(conn, name)
    if client is None:
        raise ClientNotFoundError(f"no client named {name!r}")
    if client.status == "revoked":
        raise ClientRevokedError(f"client {name!r} is revoked")
    return client
