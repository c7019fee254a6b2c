"""What every request needs from the database, held in memory and refreshed every few seconds.

Agreements, partners, partner keys and certificates change rarely but must take effect without
a restart (an IG officer suspends an agreement; a partner's key is revoked): it re-reads them on
an interval (`GATEWAY_POLICY_REFRESH_SECONDS`, default 2 s), so a change is live in every
process within that time. Client tokens are looked up by hash and remembered for the same time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from agreements.catalog_errors import CatalogError
from agreements.loader import parse_agreement
from agreements.model import Agreement, Partner
from gateway.catalog_sync import partner_from_record
from gateway.clients import Client, hash_token
from gateway.partner_certs import PartnerCertificate, from_stored
from gateway.partner_keys import PartnerKey, PartnerKeyError
from gateway.store import agreements_repo, clients_repo, partner_certs_repo, partners_repo
from gateway.store.database import Store

log = structlog.get_logger("gateway.policy")


@dataclass(frozen=True)
class PolicySnapshot:
    """One consistent view of agreements, partners and partner keys."""

    agreements: Mapping[str, Agreement] = field(default_factory=dict)
    partners: Mapping[str, Partner] = field(default_factory=dict)
    keys: Mapping[str, tuple[PartnerKey, ...]] = field(default_factory=dict)
    loaded_at: float = 0.0
    certs: Mapping[str, tuple[PartnerCertificate, ...]] = field(default_factory=dict)


_ClientFinder = Callable[[Any, str], Awaitable["clients_repo.StoredClient | None"]]


async def _by_certificate(conn: Any, key: str) -> clients_repo.StoredClient | None:
    return await clients_repo.by_cert_sha256(conn, key.removeprefix("cert:"))


class PolicyCache:
    """Reads policy from the store on an interval; request handling only reads the snapshot."""

    def __init__(
        self,
        store: Store,
        *,
        interval: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._interval = interval
        self._monotonic = monotonic
        self.snapshot = PolicySnapshot()
        self._source: tuple[object, ...] | None = None  # the rows the snapshot was parsed from
        self._clients: dict[str, tuple[Client | None, float]] = {}
        self._lookups: dict[str, asyncio.Future[Client | None]] = {}

    @property
    def interval(self) -> float:
        """Seconds between refreshes (`GATEWAY_POLICY_REFRESH_SECONDS`)."""
        return self._interval

    async def refresh(self) -> PolicySnapshot:
        """Load the newest version of every agreement, every partner and every partner key."""
        async with self._store.read() as conn:
            partner_rows = await partners_repo.all_partners(conn)
            key_rows = await partners_repo.all_keys(conn)
            cert_rows = await partner_certs_repo.all_certs(conn)
            stored = await agreements_repo.current(conn)
        source = (partner_rows, key_rows, stored, cert_rows)
        if source == self._source:
            # Nothing changed since the last read: keep what was parsed (parsing every agreement
            # again would hold the event loop every interval).
            self.snapshot = dataclasses.replace(self.snapshot, loaded_at=self._monotonic())
            return self.snapshot
        parsed_partners: dict[str, Partner] = {}
        for record in partner_rows:
            try:
                parsed_partners[record.id] = partner_from_record(record)
            except ValueError:
                log.error("partner_unreadable", partner=record.id)
        keys: dict[str, list[PartnerKey]] = {}
        for row in key_rows:
            try:
                keys.setdefault(row.partner_id, []).append(PartnerKey.from_store(row))
            except PartnerKeyError:
                log.error("partner_key_unreadable", partner=row.partner_id, kid=row.kid)
        agreements: dict[str, Agreement] = {}
        for item in stored:
            try:
                agreement = parse_agreement(
                    item.document, source=f"db:{item.id}@{item.version}", partners=parsed_partners
                )
            except CatalogError:
                log.error("agreement_unreadable", agreement=item.id, version=item.version)
                continue
            # The status column is authoritative: suspend/resume/terminate change only it.
            agreements[item.id] = agreement.model_copy(update={"status": item.status})
        certs: dict[str, list[PartnerCertificate]] = {}
        for cert_row in cert_rows:
            certs.setdefault(cert_row.partner_id, []).append(from_stored(cert_row))
        self.snapshot = PolicySnapshot(
            agreements,
            parsed_partners,
            {pid: tuple(items) for pid, items in keys.items()},
            self._monotonic(),
            {pid: tuple(items) for pid, items in certs.items()},
        )
        self._source = source
        return self.snapshot

    async def client(self, token: str) -> Client | None:
        """The active client holding this token, or None; remembered for one interval.

        When the remembered answer expires under load, every request holding the token would
        look it up at once; one lookup is made and the others wait for its answer (made after
        the expiry, so no staler than a lookup of their own).
        """
        return await self._client(hash_token(token), clients_repo.by_token_hash)

    async def client_by_certificate(self, fingerprint: str) -> Client | None:
        """The active client a verified client certificate maps to; remembered likewise."""
        return await self._client("cert:" + fingerprint, _by_certificate)

    async def _client(self, digest: str, find: _ClientFinder) -> Client | None:
        now = self._monotonic()
        cached = self._clients.get(digest)
        if cached is not None and now - cached[1] < self._interval:
            return cached[0]
        lookup = self._lookups.get(digest)
        if lookup is None:
            lookup = asyncio.ensure_future(self._look_up(digest, now, find))
            self._lookups[digest] = lookup
            lookup.add_done_callback(lambda done: self._lookup_done(digest, done))
        # A caller that goes away (client disconnect) must not cancel the others' lookup.
        return await asyncio.shield(lookup)

    async def _look_up(self, digest: str, now: float, find: _ClientFinder) -> Client | None:
        async with self._store.read() as conn:
            stored = await find(conn, digest)
        client = (
            Client(
                stored.name,
                frozenset(stored.allowed_agreements),
                stored.status,
                stored.token_expires_at,
            )
            if stored is not None
            else None
        )
        if len(self._clients) > 10_000:
            self._clients.clear()
        self._clients[digest] = (client, now)
        return client

    def _lookup_done(self, digest: str, lookup: asyncio.Future[Client | None]) -> None:
        self._lookups.pop(digest, None)
        if not lookup.cancelled():
            lookup.exception()  # its waiters were told; do not also log it as never retrieved
