"""The smaller repositories round-trip on both backends and keep their rules."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from gateway.errors import ConflictError
from gateway.store import (
    agreements_repo,
    approvals,
    clients_repo,
    disclosures,
    idempotency,
    optouts,
    partners_repo,
    receipt_rows,
)
from gateway.store.agreements_repo import StoredAgreement
from gateway.store.clients_repo import StoredClient
from gateway.store.partners_repo import StoredPartner, StoredPartnerKey
from gateway.store.unit_of_work import Connection
from tests.integration.store_support import (
    CLIENT,
    T0,
    new_disclosure,
    open_store,
    protection,
)


def agreement(version: int, content_hash: str) -> StoredAgreement:
    return StoredAgreement(
        id="isa-police-safeguarding",
        version=version,
        status="active",
        partner_id="kent-police",
        effective_from=date(2026, 1, 1),
        effective_to=None,
        review_due=date(2027, 1, 1),
        document={"id": "isa-police-safeguarding", "version": version},
        content_hash=content_hash,
        applied_by="ig.officer",
        applied_at=T0,
    )


async def test_agreement_versions_are_all_kept(database_url: str) -> None:
    async with open_store(database_url) as store:

        async def save_versions(conn: Connection) -> list[bool]:
            return [
                await agreements_repo.save(conn, agreement(1, "sha256:a")),
                await agreements_repo.save(conn, agreement(1, "sha256:a")),  # same: no-op
                await agreements_repo.save(conn, agreement(2, "sha256:b")),
            ]

        assert await store.write(save_versions) == [True, False, True]
        changed = agreement(2, "sha256:changed")
        with pytest.raises(ConflictError) as err:
            await store.write(lambda conn: agreements_repo.save(conn, changed))
        assert err.value.code == "agreement_version_exists"

        async def expire_the_first(
            conn: Connection,
        ) -> tuple[StoredAgreement | None, list[StoredAgreement], list[StoredAgreement]]:
            assert await agreements_repo.set_status(conn, "isa-police-safeguarding", 1, "expired")
            newest = await agreements_repo.get(conn, "isa-police-safeguarding")
            every = await agreements_repo.versions(conn, "isa-police-safeguarding")
            return newest, every, await agreements_repo.current(conn)

        newest, every, current = await store.write(expire_the_first)
    assert newest is not None
    assert (newest.version, newest.document["version"]) == (2, 2)
    assert [(a.version, a.status) for a in every] == [(1, "expired"), (2, "active")]
    assert [a.version for a in current] == [2]


async def test_partner_keys_valid_and_revoked(database_url: str) -> None:
    jwk = {"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "kid": "kp-enc-1"}

    async def work(conn: Connection) -> StoredPartner | None:
        partner = StoredPartner(
            "kent-police", "Kent Police", "police", "webhook", {"url": "https://x"}
        )
        await partners_repo.save_partner(conn, partner, at=T0)
        renamed = StoredPartner("kent-police", "Kent Police (renamed)", "police", "webhook", {},
                          dpo_contact="dpo@kent-police.example")  # fmt: skip
        await partners_repo.save_partner(conn, renamed, at=T0)
        for kid, start in (("kp-enc-1", T0), ("kp-enc-2", T0 + timedelta(days=1))):
            key = StoredPartnerKey(
                "kent-police", kid, "enc", "ECDH-ES+A256KW", {**jwk, "kid": kid}, start
            )
            await partners_repo.add_key(conn, key, at=T0)
        later = T0 + timedelta(days=2)
        usable = await partners_repo.usable_keys(conn, "kent-police", "enc", at=later)
        assert [k.kid for k in usable] == ["kp-enc-2", "kp-enc-1"]
        assert await partners_repo.revoke_key(conn, "kent-police", "kp-enc-2", "compromised")
        usable = await partners_repo.usable_keys(conn, "kent-police", "enc", at=later)
        assert [k.kid for k in usable] == ["kp-enc-1"]
        stored = await partners_repo.get_partner(conn, "kent-police")
        with pytest.raises(ValueError, match="public keys only"):
            await partners_repo.mirror_council_key(
                conn,
                kid="c1",
                alg="ES256",
                public_jwk={**jwk, "d": "secret"},
                status="active",
                at=T0,
            )
        await partners_repo.mirror_council_key(
            conn, kid="c1", alg="ES256", public_jwk=jwk, status="active", at=T0
        )
        assert (await partners_repo.council_jwks(conn))["keys"] == [jwk]
        return stored

    async with open_store(database_url) as store:
        stored = await store.write(work)
    assert stored is not None
    assert (stored.name, stored.dpo_contact, stored.contact) == (
        "Kent Police (renamed)", "dpo@kent-police.example", None
    )  # fmt: skip


async def test_clients_by_token_hash_rotation_and_suspension(database_url: str) -> None:
    async def work(conn: Connection) -> StoredClient | None:
        await clients_repo.create(
            conn, "mosaic", token_hash="a" * 64, allowed_agreements=frozenset({"isa-1"}), at=T0
        )
        found = await clients_repo.by_token_hash(conn, "a" * 64)
        assert found is not None
        assert found.allowed_agreements == frozenset({"isa-1"})
        assert await clients_repo.rotate(conn, "mosaic", token_hash="b" * 64, at=T0)
        assert await clients_repo.by_token_hash(conn, "a" * 64) is None
        assert await clients_repo.set_status(conn, "mosaic", "suspended")
        assert await clients_repo.by_token_hash(conn, "b" * 64) is None
        assert await clients_repo.set_agreements(conn, "mosaic", frozenset({"isa-1", "isa-2"}))
        return await clients_repo.get(conn, "mosaic")

    async with open_store(database_url) as store:
        client = await store.write(work)
    assert client is not None
    assert (client.status, client.rotated_at, len(client.allowed_agreements)) == (
        "suspended",
        T0,
        2,
    )


async def test_receipts_approvals_idempotency_optouts(database_url: str, tmp_path: Path) -> None:
    prot = protection(tmp_path)
    new = new_disclosure(prot)

    async def work(conn: Connection) -> None:
        await disclosures.record_accepted(conn, new, envelope=b"x", digest="d", actor=CLIENT, at=T0)
        receipt = receipt_rows.StoredReceipt(
            "r-1", new.id, "received", None, "eyJ.x.y", T0, "kp-sig-1", new.partner_id
        )
        assert await receipt_rows.record(conn, receipt)
        assert not await receipt_rows.record(conn, receipt)  # replay: nothing changes
        assert await receipt_rows.for_disclosure(conn, new.id) == receipt

        facts = {"requester": "DC 1234", "offence": "s47", "necessity": "risk of harm"}
        await approvals.record(
            conn, approvals.Approval(new.id, facts, "approved", "dpo.jsmith", "necessary", T0)
        )
        assert [a.facts for a in await approvals.for_disclosure(conn, new.id)] == [facts]

        assert await idempotency.lookup(conn, "mosaic", "k1", "h1") is None
        assert await idempotency.remember(
            conn, "mosaic", "k1", request_hash="h1", response={"id": new.id}, at=T0
        )
        assert not await idempotency.remember(
            conn, "mosaic", "k1", request_hash="h1", response={"id": "other"}, at=T0
        )
        stored = await idempotency.lookup(conn, "mosaic", "k1", "h1")
        assert stored is not None
        assert stored.response == {"id": new.id}
        with pytest.raises(idempotency.IdempotencyKeyReusedError):
            await idempotency.lookup(conn, "mosaic", "k1", "h2")

        index = prot.blind_index("nhs_number", "9990001234")
        assert await optouts.replace_list(conn, [index, index], version="2026-03", at=T0) == 1
        assert await optouts.is_opted_out(conn, index)
        assert not await optouts.is_opted_out(conn, prot.blind_index("nhs_number", "9990005678"))
        assert await optouts.current_version(conn) == ("2026-03", 1)

    async with open_store(database_url) as store:
        await store.write(work)
