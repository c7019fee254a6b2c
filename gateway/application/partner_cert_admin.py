"""Partners' S/MIME certificates: registered by an administrator, listed, revoked.

Each certificate is checked (`gateway.partner_certs.check_certificate`) before it is stored.
S/MIME is made at send time, so revoking a certificate needs no envelope held: from the next
policy refresh it is never encrypted to again, and a partner left with no usable certificate
gets nothing (never the TLS-only baseline) until it registers a new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cryptography import x509

from gateway.application.admin_ports import AuditTrail, StorePort, chained_entry
from gateway.application.partner_key_admin import PartnerNotFoundError
from gateway.audit import Actor
from gateway.errors import ConflictError, NotFoundError
from gateway.partner_certs import PartnerCertificate, check_certificate, from_stored, to_stored
from gateway.store import partner_certs_repo, partners_repo
from gateway.store.partner_certs_repo import StoredPartnerCert
from gateway.store.partners_repo import StoredPartner
from gateway.store.unit_of_work import Connection


class PartnerCertNotFoundError(NotFoundError):
    """The partner has no certificate with this fingerprint."""

    code = "partner_cert_not_found"


class PartnerCertExistsError(ConflictError):
    """The certificate is registered already (a revoked one is never registered again)."""

    code = "partner_cert_exists"


class PartnerCertAlreadyRevokedError(ConflictError):
    """The certificate is revoked already."""

    code = "partner_cert_already_revoked"


class PartnerCertRecords(Protocol):
    """Certificate rows (`gateway.store.partner_certs_repo`)."""

    async def certs_of(self, conn: Connection, partner_id: str) -> list[StoredPartnerCert]: ...

    async def add_cert(
        self, conn: Connection, cert: StoredPartnerCert, *, at: datetime
    ) -> None: ...

    async def revoke_cert(
        self, conn: Connection, partner_id: str, fingerprint: str, reason: str, *, at: datetime
    ) -> bool: ...


class PartnerLookup(Protocol):
    """Partners (`gateway.store.partners_repo`)."""

    async def get_partner(self, conn: Connection, id_: str) -> StoredPartner | None: ...


@dataclass(frozen=True, slots=True)
class RevokedPartnerCert:
    """A certificate just revoked, and how many the partner has left to use."""

    partner: str
    fingerprint: str
    usable_left: int


async def add_partner_cert(
    store: StorePort,
    partner_id: str,
    pem: bytes,
    *,
    actor: Actor,
    at: datetime,
    trusted: Sequence[x509.Certificate] = (),
    certs: PartnerCertRecords = partner_certs_repo,
    partners: PartnerLookup = partners_repo,
    audit_entry: AuditTrail = chained_entry,
) -> PartnerCertificate:
    """Check and register a partner's certificate (`trusted`: the configured CA bundle)."""
    cert = check_certificate(partner_id, pem, now=at, trusted=trusted)

    async def work(conn: Connection) -> None:
        await _partner(conn, partners, partner_id)
        if any(c.fingerprint == cert.fingerprint for c in await certs.certs_of(conn, partner_id)):
            raise PartnerCertExistsError(f"{partner_id} already has this certificate")
        await certs.add_cert(conn, to_stored(cert), at=at)
        await audit_entry(
            conn,
            actor,
            "partner_cert.added",
            at=at,
            targets={"partner": partner_id, "cert": cert.fingerprint},
            details={"subject": cert.subject, "not_after": cert.not_after.isoformat()},
        )

    await store.write(work)
    return cert


async def revoke_partner_cert(
    store: StorePort,
    partner_id: str,
    fingerprint: str,
    reason: str,
    *,
    actor: Actor,
    at: datetime,
    certs: PartnerCertRecords = partner_certs_repo,
    partners: PartnerLookup = partners_repo,
    audit_entry: AuditTrail = chained_entry,
) -> RevokedPartnerCert:
    """Revoke a certificate for good: no message is ever encrypted to it again."""
    fingerprint = fingerprint.lower().replace(":", "")

    async def work(conn: Connection) -> RevokedPartnerCert:
        await _partner(conn, partners, partner_id)
        found = {c.fingerprint: c for c in await certs.certs_of(conn, partner_id)}
        if fingerprint not in found:
            raise PartnerCertNotFoundError(f"{partner_id} has no certificate {fingerprint!r}")
        if found[fingerprint].status == "revoked":
            raise PartnerCertAlreadyRevokedError(f"certificate of {partner_id} already revoked")
        await certs.revoke_cert(conn, partner_id, fingerprint, reason, at=at)
        await audit_entry(
            conn,
            actor,
            "partner_cert.revoked",
            at=at,
            targets={"partner": partner_id, "cert": fingerprint},
            details={"reason": reason},
        )
        left = [
            c
            for c in found.values()
            if c.fingerprint != fingerprint and from_stored(c).usable_at(at)
        ]
        return RevokedPartnerCert(partner_id, fingerprint, len(left))

    return await store.write(work)


async def partner_certs(
    store: StorePort,
    partner_id: str,
    *,
    certs: PartnerCertRecords = partner_certs_repo,
    partners: PartnerLookup = partners_repo,
) -> list[PartnerCertificate]:
    """Every certificate the partner registered, revoked and expired ones included."""
    async with store.read() as conn:
        await _partner(conn, partners, partner_id)
        return [from_stored(row) for row in await certs.certs_of(conn, partner_id)]


async def _partner(conn: Connection, partners: PartnerLookup, partner_id: str) -> StoredPartner:
    partner = await partners.get_partner(conn, partner_id)
    if partner is None:
        raise PartnerNotFoundError(f"no partner {partner_id!r} is stored")
    return partner
