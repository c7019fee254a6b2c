"""Council key use cases against a real keyring in a temporary folder and an in-memory mirror."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.application.council_key_rotation import (
    ensure_signing_key,
    generate_council_key,
    retire_council_key,
    rotate_council_key,
)
from gateway.audit import SYSTEM
from gateway.keys import CouncilKeyring, KeyringError
from gateway.store.unit_of_work import Connection
from tests.unit.admin_fakes import ADMIN, NOW, FakeAuditTrail, FakeStore


@dataclass
class FakeMirror:
    """The council_keys table: kid -> (status, public JWK)."""

    rows: dict[str, tuple[str, Mapping[str, Any]]] = field(default_factory=dict)

    async def mirror_council_key(
        self,
        conn: Connection,
        *,
        kid: str,
        alg: str,
        public_jwk: Mapping[str, Any],
        status: str,
        at: datetime,
        published_until: datetime | None = None,
    ) -> None:
        self.rows[kid] = (status, public_jwk)

    def statuses(self) -> dict[str, str]:
        return {kid: status for kid, (status, _) in self.rows.items()}


@dataclass
class Rig:
    keyring: CouncilKeyring
    mirror: FakeMirror
    trail: FakeAuditTrail
    store: FakeStore

    def ports(self, actor: Any = ADMIN) -> dict[str, Any]:
        return {"actor": actor, "at": NOW, "mirror": self.mirror, "audit_entry": self.trail}


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    mirror, trail = FakeMirror(), FakeAuditTrail()
    return Rig(CouncilKeyring(tmp_path / "keys"), mirror, trail, FakeStore(mirror, trail))


async def test_generate_rotate_retire_keep_the_mirror_and_the_audit_in_step(rig: Rig) -> None:
    first = await generate_council_key(rig.store, rig.keyring, "ES256", **rig.ports())
    second = await generate_council_key(rig.store, rig.keyring, "Ed25519", **rig.ports())
    assert (first.status, second.status) == ("active", "pending")
    rotated = await rotate_council_key(rig.store, rig.keyring, timedelta(days=7), **rig.ports())
    assert rotated.kid == second.kid
    retired = await retire_council_key(rig.store, rig.keyring, first.kid, **rig.ports())
    assert retired.status == "retired"
    assert rig.mirror.statuses() == {first.kid: "retired", second.kid: "active"}
    assert all("d" not in jwk for _, jwk in rig.mirror.rows.values())
    assert rig.trail.actions == [
        "council_key.generated",
        "council_key.generated",
        "council_key.rotated",
        "council_key.retired",
    ]
    assert rig.trail.rows[2].details == {
        "alg": "EdDSA",  # asked for as Ed25519: the same key, published under RFC 8037's name
        "status": "active",
        "overlap_seconds": 7 * 86400,
    }
    assert {e.targets["kid"] for e in rig.trail.rows} == {first.kid, second.kid}


async def test_a_refused_change_writes_nothing(rig: Rig) -> None:
    active = await generate_council_key(rig.store, rig.keyring, "ES256", **rig.ports())
    with pytest.raises(KeyringError, match="rotate first"):
        await retire_council_key(rig.store, rig.keyring, active.kid, **rig.ports())
    assert rig.store.commits == 1
    assert rig.trail.actions == ["council_key.generated"]


async def test_start_up_generates_once_then_only_mirrors(rig: Rig) -> None:
    await ensure_signing_key(rig.store, rig.keyring, "ES256", **rig.ports(SYSTEM))
    await ensure_signing_key(rig.store, rig.keyring, "ES256", **rig.ports(SYSTEM))
    [key] = rig.keyring.list()
    assert key.status == "active"
    assert rig.mirror.statuses() == {key.kid: "active"}
    [entry] = rig.trail.rows
    assert (entry.action, entry.actor) == ("council_key.generated", SYSTEM)
    assert rig.store.commits == 2
