"""The partners we share with, as an administrator looks them up: keys and agreements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.application.admin_ports import StorePort
from gateway.application.partner_key_admin import PartnerNotFoundError
from gateway.store import agreements_repo, partners_repo
from gateway.store.agreements_repo import StoredAgreement
from gateway.store.partners_repo import StoredPartner, StoredPartnerKey
from gateway.store.unit_of_work import Connection


class PartnerRecords(Protocol):
    """StoredPartner rows and their keys (`gateway.store.partners_repo`)."""

    async def all_partners(self, conn: Connection) -> list[StoredPartner]: ...

    async def get_partner(self, conn: Connection, id_: str) -> StoredPartner | None: ...

    async def keys_of(self, conn: Connection, partner_id: str) -> list[StoredPartnerKey]: ...


class CurrentAgreements(Protocol):
    """The newest version of every agreement (`gateway.store.agreements_repo`)."""

    async def current(self, conn: Connection) -> list[StoredAgreement]: ...


@dataclass(frozen=True, slots=True)
class PartnerListing:
    """A partner and every key it registered."""

    partner: StoredPartner
    keys: list[StoredPartnerKey]


@dataclass(frozen=True, slots=True)
class PartnerProfile:
    """A partner, its keys, and the agreements in force that name it."""

    partner: StoredPartner
    keys: list[StoredPartnerKey]
    agreements: list[StoredAgreement]


async def list_partners(
    store: StorePort, *, partners: PartnerRecords = partners_repo
) -> list[PartnerListing]:
    """Every partner, by id, with its keys."""
    async with store.read() as conn:
        return [
            PartnerListing(partner, await partners.keys_of(conn, partner.id))
            for partner in await partners.all_partners(conn)
        ]


async def partner_profile(
    store: StorePort,
    partner_id: str,
    *,
    partners: PartnerRecords = partners_repo,
    agreements: CurrentAgreements = agreements_repo,
) -> PartnerProfile:
    """One partner with its keys and agreements; `partner_not_found` when none is stored."""
    async with store.read() as conn:
        partner = await partners.get_partner(conn, partner_id)
        if partner is None:
            raise PartnerNotFoundError(f"no partner {partner_id!r} is stored")
        keys = await partners.keys_of(conn, partner_id)
        current = await agreements.current(conn)
    return PartnerProfile(partner, keys, [a for a in current if a.partner_id == partner_id])
