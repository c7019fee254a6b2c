"""Held disclosures: approve seals and queues (held copy gone), reject records and destroys."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from gateway.application.approval_decisions import ApprovalRefusedError
from gateway.audit import Actor, ActorKind
from gateway.cli.admin import main as admin_main
from gateway.store import approvals as approvals_repo
from gateway.store.tables import held_records, outbox
from tests.gateway_support import Harness, adult_submission

Client = TestClient[Any, Any]
GUARDIAN = Actor(ActorKind.ADMIN, "J Example (Caldicott Guardian)")
ANNEX_B = {
    "requesting_officer": "DC 1234 Example",
    "rank": "Detective Constable",
    "authorising_officer": "DI 5678 Example",
    "offence_or_prejudice": "Burglary investigation (synthetic) MARKER-free-text-9k2",
    "why_necessary": "To trace a witness; no other source",
}


async def _held(api: Client, harness: Harness) -> str:
    body = adult_submission(
        agreement="KM-POL-S2-011", purpose="law_enforcement_request", annex_b=ANNEX_B
    )
    headers = {"Authorization": f"Bearer {harness.token()}"}
    resp = await api.post("/v1/disclosures", json=body, headers=headers)
    assert resp.status == 202
    reply = await resp.json()
    assert reply["status"] == "pending_approval"
    return str(reply["id"])


async def _count(harness: Harness, table: Any, disclosure_id: str) -> int:
    async with harness.gateway.store.read() as conn:
        value = await conn.scalar(
            select(func.count()).select_from(table).where(table.c.disclosure_id == disclosure_id)
        )
    return int(value or 0)


async def test_police_request_without_annex_b_is_denied(api: Client, harness: Harness) -> None:
    body = adult_submission(agreement="KM-POL-S2-011", purpose="law_enforcement_request")
    headers = {"Authorization": f"Bearer {harness.token()}"}
    resp = await api.post("/v1/disclosures", json=body, headers=headers)
    assert resp.status == 403
    assert "approval_facts_missing" in (await resp.json())["reasons"]


async def test_approve_seals_queues_and_destroys_the_held_copy(
    api: Client, harness: Harness
) -> None:
    disclosure_id = await _held(api, harness)
    assert await _count(harness, held_records, disclosure_id) == 1
    shown = await harness.gateway.approvals.show(disclosure_id)
    assert shown.annex_b is not None
    assert shown.annex_b["rank"] == "Detective Constable"
    assert shown.would_send
    done = await harness.gateway.approvals.approve(disclosure_id, actor=GUARDIAN, reason="Sch2 p2")
    assert done.status.value == "queued"
    assert done.approver == "J Example (Caldicott Guardian)"
    assert await _count(harness, held_records, disclosure_id) == 0
    assert await _count(harness, outbox, disclosure_id) == 1
    async with harness.gateway.store.read() as conn:
        [decision] = await approvals_repo.for_disclosure(conn, disclosure_id)
    assert decision.decision == "approved"
    assert decision.facts["rank"] == "Detective Constable"
    assert "MARKER-free-text-9k2" not in json.dumps(decision.facts)  # free text sealed at rest
    view = await api.get(
        f"/v1/disclosures/{disclosure_id}", headers={"Authorization": f"Bearer {harness.token()}"}
    )
    assert [e["type"] for e in (await view.json())["events"]] == ["held", "approved"]


async def test_reject_records_and_destroys(api: Client, harness: Harness) -> None:
    disclosure_id = await _held(api, harness)
    done = await harness.gateway.approvals.reject(disclosure_id, actor=GUARDIAN, reason="no")
    assert done.status.value == "rejected"
    assert await _count(harness, held_records, disclosure_id) == 0
    assert await _count(harness, outbox, disclosure_id) == 0
    with pytest.raises(ApprovalRefusedError):
        await harness.gateway.approvals.approve(disclosure_id, actor=GUARDIAN, reason="again")


async def test_cli_lists_and_approves(
    api: Client, harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    disclosure_id = await _held(api, harness)
    settings = harness.gateway.settings
    monkeypatch.setenv("GATEWAY_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("GATEWAY_KEYS_DIR", str(settings.keys_dir))
    capsys.readouterr()
    assert await asyncio.to_thread(admin_main, ["approvals", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [item["id"] for item in listed] == [disclosure_id]
    approve = ["approvals", "approve", disclosure_id, "--reason", "ok", "--actor", "IG"]
    assert await asyncio.to_thread(admin_main, approve) == 0
    assert await asyncio.to_thread(admin_main, approve) == 1
    assert "not held" in capsys.readouterr().err
