"""`gateway-admin deadletters list|replay`, called as a function on a real SQLite store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.cli.admin import main as admin_main
from gateway.store import delivery_records
from gateway.store.disclosure_model import Status
from gateway.store.tables import outbox
from gateway.store.unit_of_work import Connection
from tests.integration.delivery_support import Rig, utc_now


@pytest.fixture
async def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gh.db'}"
    built = await Rig.open(tmp_path, database_url=url)
    monkeypatch.setenv("GATEWAY_DATABASE_URL", url)
    monkeypatch.setenv("GATEWAY_BROKER_URL", "")
    monkeypatch.setenv("COLUMNS", "200")  # a wide table, so no cell is cut short
    yield built
    await built.close()


async def admin(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(admin_main, list(argv))
    return code, capsys.readouterr().out


def document(out: str, first_key: str) -> Any:
    """The JSON document in the output (log lines may share stdout in a test)."""
    start = out.index('{\n  "' + first_key)
    return json.JSONDecoder().raw_decode(out[start:])[0]


async def failed(rig: Rig, partner: str, count: int, reason: str) -> list[str]:
    ids = await rig.submit(partner, count)
    at = utc_now()

    async def fail_them(conn: Connection) -> list[bool]:
        return [
            await delivery_records.fail(conn, id_, reason=reason, at=at, attempts=6) for id_ in ids
        ]

    assert all(await rig.store.write(fail_them))
    return ids


async def test_list_shows_failed_disclosures_by_partner(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    await rig.add_partner("alpha")
    await rig.add_partner("beta")
    alpha = await failed(rig, "alpha", 2, "delivery_attempts_exhausted")
    await failed(rig, "beta", 1, "partner_refused")
    await rig.submit("alpha")  # queued, not a dead letter

    code, out = await admin(capsys, "deadletters", "list", "--partner", "alpha", "--json")
    assert code == 0
    listed = document(out, "dead_letters")
    assert listed["count"] == 2
    assert {d["disclosure_id"] for d in listed["dead_letters"]} == set(alpha)
    assert {d["reason"] for d in listed["dead_letters"]} == {"delivery_attempts_exhausted"}
    assert {d["attempts"] for d in listed["dead_letters"]} == {6}

    code, out = await admin(capsys, "deadletters", "list")
    assert code == 0
    assert "Dead letters (3)" in out
    assert "partner_refused" in out


async def test_replay_by_partner_requeues_the_same_envelope_and_is_audited(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    await rig.add_partner("alpha")
    ids = await failed(rig, "alpha", 2, "partner_refused")
    code, out = await admin(
        capsys, "deadletters", "replay", "--partner", "alpha", "--actor", "oncall", "--json"
    )
    assert code == 0
    result = document(out, "replayed")
    assert sorted(result["from_outbox"]) == sorted(ids)
    assert result["refused"] == {}
    assert await rig.statuses(ids) == dict.fromkeys(ids, Status.QUEUED)
    async with rig.store.read() as conn:
        rows = list(await conn.execute(select(outbox.c.disclosure_id, outbox.c.state,
                                              outbox.c.attempts, outbox.c.envelope)))  # fmt: skip
    assert {(r.state, r.attempts) for r in rows} == {("pending", 0)}
    assert {r.disclosure_id: bytes(r.envelope) for r in rows} == {i: rig.sealed[i] for i in ids}
    timeline = await rig.timeline(ids[0])
    assert [e.type for e in timeline][-2:] == ["failed", "replayed"]
    assert timeline[-1].detail == {"by": "oncall"}


async def test_replay_refuses_what_is_not_a_dead_letter(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    await rig.add_partner("alpha")
    [queued] = await rig.submit("alpha")
    code, out = await admin(capsys, "deadletters", "replay", queued, "--json")
    assert code == 1
    assert document(out, "replayed")["refused"] == {queued: "not_failed"}
    code, out = await admin(capsys, "deadletters", "replay", "no-such-id", "--json")
    assert code == 1
    assert document(out, "replayed")["refused"] == {"no-such-id": "not_found"}
    assert await rig.status(queued) is Status.QUEUED


async def test_replay_needs_exactly_one_target(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = await admin(capsys, "deadletters", "replay")
    assert code == 2
    code, _ = await admin(capsys, "deadletters", "replay", "x", "--partner", "alpha")
    assert code == 2


@pytest.mark.parametrize("command", [["list"], ["replay", "--partner", "p"], ["reconcile"]])
async def test_a_database_without_the_schema_is_one_line_not_a_traceback(
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    monkeypatch.setenv("GATEWAY_BROKER_URL", "")
    monkeypatch.setenv("GATEWAY_KEYS_DIR", str(tmp_path / "keys"))
    code = await asyncio.to_thread(admin_main, ["deadletters", *command])
    err = capsys.readouterr().err
    assert code == 1
    assert "gateway-admin db upgrade" in err
    assert "Traceback" not in err
