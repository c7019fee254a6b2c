"""A revoked partner key is never used again: every undelivered envelope sealed to it is held as
failed (listed, not replayable), and the worker checks at send time too. A retired key (routine
rotation) lets envelopes already sealed to it go until its date. Both queues, real services."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.admin import main as admin_main
from gateway.delivery.dead_letters import list_dead_letters, replay
from gateway.partner_keys import PartnerKey, generate_partner_keys, public_jwk
from gateway.store import delivery_records, partners_repo
from gateway.store.disclosure_model import Status
from gateway.store.unit_of_work import Connection
from tests.integration.delivery_support import CLIENT, Rig, utc_now, wait_until
from tests.integration.test_delivery import MODES, close_rig, open_rig


@pytest.fixture(params=MODES)
async def rig(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Rig]:
    built = await open_rig(request.param, tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'gh.db'}")
    monkeypatch.setenv("GATEWAY_DATABASE_URL", built.settings.database_url)
    monkeypatch.setenv("GATEWAY_BROKER_URL", built.settings.broker_url)
    monkeypatch.setenv("GATEWAY_BROKER_PREFIX", built.settings.broker_prefix)
    yield built
    await close_rig(built)


def enc_kid(rig: Rig, partner: str) -> str:
    return PartnerKey.from_jwk(partner, rig.sims[partner].public_keys()[0], use="enc").kid


async def admin(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    """Run gateway-admin with --json; the JSON document it printed."""
    capsys.readouterr()
    code = await asyncio.to_thread(admin_main, [*argv, "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    return json.JSONDecoder().raw_decode(out[out.index("{") :])[0]


async def add_successor(rig: Rig, partner: str) -> str:
    """A newer encryption key for the partner (what a rotation registers first)."""
    enc, _ = generate_partner_keys("ec")
    key = PartnerKey.from_jwk(partner, public_jwk(enc), use="enc")
    row = key.to_store(registered_at=utc_now())
    await rig.store.write(lambda conn: partners_repo.add_key(conn, row, at=utc_now()))
    return key.kid


async def test_revoke_holds_every_undelivered_envelope_as_failed_and_sends_none(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = await rig.add_partner("compromised")
    queued = await rig.submit("compromised", 3)
    [dead] = await rig.submit("compromised", 1)
    at = utc_now()

    async def dead_letter(conn: Connection) -> bool:
        return await delivery_records.fail(conn, dead, reason="partner_refused", at=at, attempts=1)

    assert await rig.store.write(dead_letter)
    kid = enc_kid(rig, "compromised")
    revoked = await admin(
        capsys, "partners", "keys", "revoke", "compromised", kid, "--reason", "key compromised"
    )
    assert sorted(revoked["held"]) == sorted([*queued, dead])
    await rig.policy.refresh()
    await rig.start()
    assert (await rig.statuses(queued)) == dict.fromkeys(queued, Status.FAILED)
    listed = {d.disclosure_id: d.reason for d in await list_dead_letters(rig.store)}
    assert listed == dict.fromkeys([*queued, dead], "partner_key_revoked")
    result = await replay(rig.store, actor=CLIENT, clock=utc_now, partner="compromised")
    assert result.refused == dict.fromkeys([*queued, dead], "partner_key_revoked")
    assert result.replayed == []
    fresh = await rig.submit("compromised", 1)  # sent now would be the proof of the check
    await rig.wait_for(fresh, Status.FAILED)
    assert len(sim.ledger) == 0  # nothing sealed to the revoked key ever left


async def test_the_worker_refuses_at_send_time_a_key_revoked_behind_its_back(rig: Rig) -> None:
    sim = await rig.add_partner("revoked-late")
    await rig.start()
    [before] = await rig.submit("revoked-late", 1)
    await rig.wait_for([before], Status.RECEIPTED)
    kid = enc_kid(rig, "revoked-late")
    # Only the key row changes (as in a race with the revoke): the worker's own check must hold.
    await rig.store.write(
        lambda conn: partners_repo.revoke_key(conn, "revoked-late", kid, "compromised")
    )
    await rig.policy.refresh()
    [after] = await rig.submit("revoked-late", 1)
    await rig.wait_for([after], Status.FAILED)
    [dead] = await list_dead_letters(rig.store)
    assert (dead.disclosure_id, dead.reason) == (after, "partner_key_revoked")
    assert sim.ledger.get(after) is None
    assert len(sim.ledger) == 1


async def test_a_retired_key_still_delivers_until_its_date_then_never(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = await rig.add_partner("rotating")
    kid = enc_kid(rig, "rotating")
    sealed_before = await rig.submit("rotating", 2)
    newer = await add_successor(rig, "rotating")
    tomorrow = (utc_now() + timedelta(days=1)).date().isoformat()
    retire = ("partners", "keys", "retire", "rotating", kid, "--after", tomorrow)
    retired = await admin(capsys, *retire)
    assert (retired["kid"], retired["use"]) == (kid, "enc")
    listed = await admin(capsys, "partners", "show", "rotating")
    status = {k["kid"]: (k["status"], k["usable_now"]) for k in listed["keys"]}
    assert status[kid] == ("retired", False)  # not for new envelopes ...
    assert status[newer] == ("active", True)  # ... which use the newer key
    await rig.policy.refresh()
    await rig.start()
    await rig.wait_for(sealed_before, Status.RECEIPTED)  # ... but those sealed to it still go

    # Past the retirement date: an envelope still sealed to it is held, never sent.
    past = utc_now() - timedelta(seconds=1)
    await rig.store.write(lambda conn: partners_repo.retire_key(conn, "rotating", kid, past))
    await rig.policy.refresh()
    [late] = await rig.submit("rotating", 1)
    await rig.wait_for([late], Status.FAILED)
    [dead] = await list_dead_letters(rig.store)
    assert dead.reason == "partner_key_retired"
    result = await replay(rig.store, actor=CLIENT, clock=utc_now, ids=[late])
    assert result.refused == {late: "partner_key_retired"}
    await wait_until(lambda: len(sim.ledger) == 2)
    assert sim.ledger.get(late) is None


async def test_retire_needs_a_newer_key_first(rig: Rig) -> None:
    await rig.add_partner("only-key")
    kid = enc_kid(rig, "only-key")
    tomorrow = (utc_now() + timedelta(days=1)).date().isoformat()
    code = await asyncio.to_thread(
        admin_main, ["partners", "keys", "retire", "only-key", kid, "--after", tomorrow]
    )
    assert code != 0
    async with rig.store.read() as conn:
        [row] = [k for k in await partners_repo.keys_of(conn, "only-key") if k.kid == kid]
    assert row.status == "active"
