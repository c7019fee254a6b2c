"""Build a real Gateway for tests: a fresh database, the example catalog, partner keys, clients."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agreements.loader import default_catalog_dir, load_catalog
from agreements.samples import adult_record, child_record
from gateway import audit
from gateway.application.catalog_apply import apply_catalog
from gateway.application.client_systems import add_client as register_client
from gateway.application.partner_key_admin import add_partner_key
from gateway.partner_keys import KeyUse, PartnerKey, generate_partner_keys, public_jwk
from gateway.service import Gateway
from gateway.settings import Settings, load_settings

# Catalog review dates are real dates: tests run on a fixed day so decisions never drift.
TEST_NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
ADMIN = audit.Actor(audit.ActorKind.ADMIN, "test-admin")
# As if MESH were configured: most tests send to the NHS trust over MESH without delivering.
EVERY_CHANNEL_BUT_EMAIL = frozenset({"webhook", "mesh", "sftp"})


@dataclass
class Harness:
    """A gateway plus what a test needs to drive it."""

    gateway: Gateway
    partner_keys: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, client: str = "case-system") -> str:
        """The bearer token of a registered client."""
        return self.tokens[client]


def isolated_settings(tmp_path: Path, database_url: str | None = None, **extra: Any) -> Settings:
    """Settings isolated under tmp_path."""
    url = database_url or f"sqlite+aiosqlite:///{tmp_path / 'gatehouse.db'}"
    return load_settings(database_url=url, keys_dir=tmp_path / "keys", **extra)


async def register_partner_key(
    gateway: Gateway, partner_id: str, private_jwk: Mapping[str, Any], use: KeyUse, at: datetime
) -> None:
    """Register a partner's public key, as `gateway-admin partners keys add` does."""
    key = PartnerKey.from_jwk(
        partner_id,
        public_jwk(private_jwk),
        use=use,
        not_before=at - timedelta(days=1),
    )
    await add_partner_key(gateway.store, key, actor=ADMIN, at=at)


async def add_client(gateway: Gateway, name: str, agreements: frozenset[str], at: datetime) -> str:
    """Register a client system and return its token."""
    issued = await register_client(gateway.store, name, agreements, actor=ADMIN, at=at)
    return issued.token


async def build_harness(
    settings: Settings,
    *,
    now: datetime = TEST_NOW,
    without_keys: frozenset[str] = frozenset(),
    catalog_dir: Path | None = None,
    deliverable: frozenset[str] | None = EVERY_CHANNEL_BUT_EMAIL,
) -> Harness:
    """Open a gateway on `settings`, apply the catalog, register keys and two clients.

    `deliverable`: channels accepted at submission (None: those the settings configure).
    """
    gateway = await Gateway.open(settings, clock=lambda: now, deliverable=deliverable)
    catalog = load_catalog(catalog_dir or default_catalog_dir())
    await apply_catalog(gateway.store, catalog, actor=ADMIN, at=now)
    harness = Harness(gateway)
    for partner_id in catalog.partners:
        if partner_id in without_keys:
            continue
        enc, sig = generate_partner_keys("ec")
        harness.partner_keys[partner_id] = (enc, sig)
        await register_partner_key(gateway, partner_id, enc, "enc", now)
        await register_partner_key(gateway, partner_id, sig, "sig", now)
    everything = frozenset(catalog.agreements)
    harness.tokens["case-system"] = await add_client(gateway, "case-system", everything, now)
    harness.tokens["education"] = await add_client(
        gateway, "education", frozenset({"KM-DFE-CIN-013"}), now
    )
    await gateway.policy.refresh()
    return harness


def lac_submission(**overrides: Any) -> dict[str, Any]:
    """An allowed looked-after-child health disclosure to the NHS trust."""
    body: dict[str, Any] = {
        "agreement": "KM-NHS-LAC-001",
        "purpose": "looked_after_children_health",
        "subject": {"nhs_number": "9990000018", "local_id": "MC-C-000123"},
        "record": child_record(),
        "requested_by": {"user": "sw-0042", "role": "social_worker"},
        "reason": "Initial health assessment for a child newly in care",
    }
    body.update(overrides)
    return body


def adult_submission(**overrides: Any) -> dict[str, Any]:
    """An adult social care disclosure (overridden per test)."""
    body: dict[str, Any] = {
        "agreement": "KM-DOM-006",
        "purpose": "direct_care",
        "subject": {"nhs_number": "9990000026", "local_id": "MC-A-000456"},
        "record": adult_record(),
        "requested_by": {"user": "sw-0099", "role": "care_manager"},
        "reason": "Start of a new package of care",
    }
    body.update(overrides)
    return body
