"""Held disclosures on the real service: four eyes, the decision re-run, narrowing, Annex B."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, update

from agreements.loader import default_catalog_dir
from agreements.samples import adult_record
from gateway.application.approval_decisions import ApprovalRefusedError
from gateway.application.approver_register import add_approver
from gateway.application.client_systems import revoke_client
from gateway.application.four_eyes import ApproverIdentity, ApproverIsRequesterError
from gateway.application.optout_list import import_optout_list
from gateway.cli.admin import main as admin_main
from gateway.cli.common import default_actor
from gateway.http.app import create_app
from gateway.sealing import open_envelope
from gateway.store import approvals as approvals_repo
from gateway.store import disclosures
from gateway.store.tables import audit_log, audit_pending, held_records, outbox
from tests.gateway_support import (
    ADMIN,
    TEST_NOW,
    Harness,
    adult_submission,
    build_harness,
    isolated_settings,
)

Client = TestClient[Any, Any]
POLICE = "KM-POL-S2-011"
COMMISSIONING = "KM-ICB-COM-004"
GUARDIAN = ApproverIdentity("CG-0001", login="jsmith")
MARKER = "MARKER-free-text-9k2"
ANNEX_B = {
    "requesting_officer": "DC 1234 Example",
    "rank": "Detective Constable",
    "authorising_officer": "DI 5678 Example",
    "requester_reference": "46/00000/26",
    "offence_or_prejudice": f"Burglary investigation (synthetic) {MARKER}",
    "prejudice": "Detection of the offence",
    "why_necessary": "To trace a witness; no other source",
    "data_requested": ["name", "current address"],
}
NARROWED = ["identity.name", "identity.address.postcode"]


@pytest.fixture(autouse=True)
async def guardian(harness: Harness) -> None:
    """The Caldicott Guardian is registered to decide police and commissioning requests."""
    await add_approver(
        harness.gateway.store,
        GUARDIAN.name,
        [POLICE, COMMISSIONING],
        role="caldicott_guardian",
        actor=ADMIN,
        at=TEST_NOW,
    )


async def _submit(api: Client, harness: Harness, **overrides: Any) -> Any:
    fields = {"agreement": POLICE, "purpose": "law_enforcement_request", "annex_b": ANNEX_B}
    body = adult_submission(**{**fields, **overrides})
    headers = {"Authorization": f"Bearer {harness.token()}"}
    return await api.post("/v1/disclosures", json=body, headers=headers)


async def _held(api: Client, harness: Harness, **overrides: Any) -> str:
    resp = await _submit(api, harness, **overrides)
    assert resp.status == 202, await resp.text()
    reply = await resp.json()
    assert reply["status"] == "pending_approval"
    return str(reply["id"])


async def _count(harness: Harness, table: Any, disclosure_id: str) -> int:
    async with harness.gateway.store.read() as conn:
        value = await conn.scalar(
            select(func.count()).select_from(table).where(table.c.disclosure_id == disclosure_id)
        )
    return int(value or 0)


async def _view(api: Client, harness: Harness, disclosure_id: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {harness.token()}"}
    resp = await api.get(f"/v1/disclosures/{disclosure_id}", headers=headers)
    assert resp.status == 200
    view: dict[str, Any] = await resp.json()
    return view


async def test_police_request_without_annex_b_is_denied(api: Client, harness: Harness) -> None:
    body = adult_submission(agreement=POLICE, purpose="law_enforcement_request")
    headers = {"Authorization": f"Bearer {harness.token()}"}
    resp = await api.post("/v1/disclosures", json=body, headers=headers)
    assert resp.status == 403
    assert "approval_facts_missing" in (await resp.json())["reasons"]


@pytest.mark.parametrize(
    ("facts", "field"),
    [
        ({**ANNEX_B, "prejudice": "   "}, "annex_b.prejudice"),
        ({**ANNEX_B, "rank": "\t"}, "annex_b.rank"),
        ({**ANNEX_B, "data_requested": [" "]}, "annex_b.data_requested.0"),
        ({k: v for k, v in ANNEX_B.items() if k != "requester_reference"}, None),
    ],
)
async def test_blank_or_missing_annex_b_facts_are_422_naming_the_field(
    api: Client, harness: Harness, facts: dict[str, Any], field: str | None
) -> None:
    resp = await _submit(api, harness, annex_b=facts)
    assert resp.status == 422
    problem = await resp.json()
    assert [e["field"] for e in problem["errors"]] == [field or "annex_b.requester_reference"]
    async with harness.gateway.store.read() as conn:
        assert await conn.scalar(select(func.count()).select_from(held_records)) == 0


async def test_approve_seals_queues_and_destroys_the_held_copy(
    api: Client, harness: Harness
) -> None:
    disclosure_id = await _held(api, harness)
    assert await _count(harness, held_records, disclosure_id) == 1
    shown = await harness.gateway.approvals.show(disclosure_id)
    assert shown.annex_b is not None
    assert shown.annex_b["data_requested"] == ["name", "current address"]
    done = await harness.gateway.approvals.approve(disclosure_id, approver=GUARDIAN, reason="ok")
    assert (done.status.value, done.approver) == ("queued", "CG-0001")
    assert await _count(harness, held_records, disclosure_id) == 0
    assert await _count(harness, outbox, disclosure_id) == 1
    async with harness.gateway.store.read() as conn:
        [decision] = await approvals_repo.for_disclosure(conn, disclosure_id)
    assert (decision.decision, decision.login, decision.role) == (
        "approved",
        "jsmith",
        "caldicott_guardian",
    )
    assert MARKER not in json.dumps(decision.facts)  # free text sealed at rest
    view = await _view(api, harness, disclosure_id)
    assert [e["type"] for e in view["events"]] == ["held", "approved"]


async def test_narrowed_fields_are_all_the_envelope_carries(api: Client, harness: Harness) -> None:
    disclosure_id = await _held(api, harness)
    shown = await harness.gateway.approvals.show(disclosure_id)
    assert set(NARROWED) < set(shown.would_send)  # without narrowing, more would leave
    done = await harness.gateway.approvals.approve(
        disclosure_id, approver=GUARDIAN, reason="only what is needed", fields=NARROWED
    )
    assert set(done.fields_sent) - {"subject.nhs_number", "subject.local_id"} == set(NARROWED)
    async with harness.gateway.store.read() as conn:
        envelope = await conn.scalar(
            select(outbox.c.envelope).where(outbox.c.disclosure_id == disclosure_id)
        )
    enc, _ = harness.partner_keys["kent-police"]
    claims = open_envelope(
        bytes(envelope),
        decryption_key=enc,
        council_jwks=harness.gateway.jwks(),
        expected_audience="kent-police",
        now=TEST_NOW,
    )
    identity = adult_record()["identity"]
    assert claims["data"] == {
        "identity": {
            "name": identity["name"],
            "address": {"postcode": identity["address"]["postcode"]},
        }
    }


async def test_approval_after_the_client_is_revoked_leaves_it_denied(
    api: Client, harness: Harness
) -> None:
    disclosure_id = await _held(api, harness)
    await revoke_client(harness.gateway.store, "case-system", actor=ADMIN, at=TEST_NOW)
    done = await harness.gateway.approvals.approve(disclosure_id, approver=GUARDIAN, reason="ok")
    assert (done.status.value, done.decision_reasons) == ("denied", ("client_not_authorised",))
    assert await _count(harness, held_records, disclosure_id) == 0
    assert await _count(harness, outbox, disclosure_id) == 0
    record = await harness.gateway.approvals.annex_b(disclosure_id)
    assert (record.decision, record.policy_reasons) == ("denied", ("client_not_authorised",))


async def test_the_requester_cannot_approve_and_nothing_changes(
    api: Client, harness: Harness
) -> None:
    await add_approver(
        harness.gateway.store, "sw-0099", [POLICE], role="ig_manager", actor=ADMIN, at=TEST_NOW
    )
    disclosure_id = await _held(api, harness)  # requested by sw-0099
    with pytest.raises(ApproverIsRequesterError):
        await harness.gateway.approvals.approve(
            disclosure_id, approver=ApproverIdentity("SW-0099 ", "sw"), reason="mine"
        )
    assert await _count(harness, held_records, disclosure_id) == 1
    assert (await _view(api, harness, disclosure_id))["status"] == "pending_approval"


async def test_a_request_held_by_the_previous_version_still_approves(
    api: Client, harness: Harness
) -> None:
    disclosure_id = await _held(api, harness)
    old = orjson.loads(await _held_plaintext(harness, disclosure_id))
    old["v"] = 1
    old["annex_b"] = {
        k: ANNEX_B[k]
        for k in (
            "requesting_officer",
            "rank",
            "authorising_officer",
            "offence_or_prejudice",
            "why_necessary",
        )
    }
    sealed = harness.gateway.protection.seal_at_rest(orjson.dumps(old), disclosure_id.encode())

    async def replace(conn: Any) -> None:
        await conn.execute(
            update(held_records)
            .where(held_records.c.disclosure_id == disclosure_id)
            .values(ciphertext=sealed)
        )

    await harness.gateway.store.write(replace)
    done = await harness.gateway.approvals.approve(disclosure_id, approver=GUARDIAN, reason="ok")
    assert done.status.value == "queued"


async def _held_plaintext(harness: Harness, disclosure_id: str) -> bytes:
    async with harness.gateway.store.read() as conn:
        return await disclosures.held_request(conn, disclosure_id, harness.gateway.protection)


async def test_reject_records_and_destroys(api: Client, harness: Harness) -> None:
    disclosure_id = await _held(api, harness)
    done = await harness.gateway.approvals.reject(disclosure_id, approver=GUARDIAN, reason="no")
    assert done.status.value == "rejected"
    assert await _count(harness, held_records, disclosure_id) == 0
    assert await _count(harness, outbox, disclosure_id) == 0
    with pytest.raises(ApprovalRefusedError):
        await harness.gateway.approvals.approve(disclosure_id, approver=GUARDIAN, reason="again")


@pytest.fixture
async def commissioning(
    tmp_path: Path, aiohttp_client: Any
) -> AsyncIterator[tuple[Harness, Client]]:
    """A gateway whose commissioning agreement (opt-out applies) needs an approval each time."""
    catalog = tmp_path / "catalog"
    shutil.copytree(default_catalog_dir(), catalog)
    path = catalog / "health" / "icb-commissioning.yaml"
    text = path.read_text()
    assert "\napproval:" not in text
    path.write_text(
        text.replace(
            "\nnational_data_opt_out: applies\n",
            "\nnational_data_opt_out: applies\napproval: required\n",
        )
    )
    built = await build_harness(isolated_settings(tmp_path / "c"), catalog_dir=catalog)
    await add_approver(
        built.gateway.store, GUARDIAN.name, [COMMISSIONING], role="dpo", actor=ADMIN, at=TEST_NOW
    )
    yield built, await aiohttp_client(create_app(built.gateway))
    await built.gateway.close()


async def test_approval_after_an_opt_out_where_it_applies_leaves_it_denied(
    commissioning: tuple[Harness, Client],
) -> None:
    harness, api = commissioning
    disclosure_id = await _held(api, harness, agreement=COMMISSIONING, purpose="commissioning")
    nhs_number = adult_submission()["subject"]["nhs_number"]
    await import_optout_list(
        harness.gateway.store,
        [nhs_number],
        protection=harness.gateway.protection,
        list_version="2026-11",
        invalid_lines=0,
        actor=ADMIN,
        at=TEST_NOW,
    )
    done = await harness.gateway.approvals.approve(disclosure_id, approver=GUARDIAN, reason="ok")
    assert (done.status.value, done.decision_reasons) == ("denied", ("national_data_opt_out",))
    assert (await _view(api, harness, disclosure_id))["reasons"] == ["national_data_opt_out"]
    assert await _count(harness, outbox, disclosure_id) == 0


async def test_cli_refuses_the_requester_then_approves_narrowed_and_shows_annex_b(
    api: Client, harness: Harness, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    disclosure_id = await _held(api, harness)
    settings = harness.gateway.settings
    monkeypatch.setenv("GATEWAY_DATABASE_URL", settings.resolved_database_url)
    monkeypatch.setenv("GATEWAY_KEYS_DIR", str(settings.keys_dir))

    async def admin(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = await asyncio.to_thread(admin_main, list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = await admin("approvals", "list", "--json")
    assert (code, [item["id"] for item in json.loads(out)]) == (0, [disclosure_id])
    approve = ["approvals", "approve", disclosure_id, "--reason", "ok"]
    code, _, err = await admin(*approve, "--actor", "sw-0099")
    assert code == 1
    assert "requested this disclosure" in err
    code, _, err = await admin(*approve, "--actor", "nobody-1")
    assert code == 1
    assert "not a registered approver" in err
    code, _, err = await admin(*approve, "--actor", "CG-0001", "--fields", "health.diagnoses")
    assert code == 1
    assert "allowlist" in err
    code, _, _ = await admin(*approve)  # --actor is required
    assert code == 2
    code, out, _ = await admin(
        *approve, "--actor", "cg-0001", "--fields", ",".join(NARROWED), "--json"
    )
    assert (code, json.loads(out)["status"]) == (0, "queued")
    code, _, err = await admin(*approve, "--actor", "CG-0001")
    assert (code, "not held" in err) == (1, True)

    code, out, _ = await admin("approvals", "show", disclosure_id, "--annex-b", "--json")
    record = json.loads(out)
    assert code == 0
    assert record["facts"]["offence_or_prejudice"] == ANNEX_B["offence_or_prejudice"]  # opened
    assert record["facts"]["data_requested"] == ANNEX_B["data_requested"]
    assert (record["decision"], record["reason"], record["fields_granted"]) == (
        "approved",
        "ok",
        NARROWED,
    )
    assert record["decided_by"] == {
        "approver": "CG-0001",
        "role": "caldicott_guardian",
        "login": default_actor(),
    }
    assert record["decided_at"] is not None
    code, out, _ = await admin("approvals", "show", disclosure_id, "--annex-b")
    assert code == 0
    assert "Annex B record" in out
    assert "caldicott_guardian" in out

    refused = [e for e in await _audit(harness) if e["action"] == "approval.refused"]
    assert [e["details"]["code"] for e in refused] == [
        "approver_is_requester", "approver_not_registered", "fields_not_permitted"
    ]  # fmt: skip
    assert refused[0]["details"]["login"] == default_actor()


async def _audit(harness: Harness) -> list[dict[str, Any]]:
    async with harness.gateway.store.read() as conn:
        found = []
        for table in (audit_log, audit_pending):
            for row in await conn.execute(select(table.c.action, table.c.details)):
                found.append({"action": row.action, "details": json.loads(row.details)})
    return found
