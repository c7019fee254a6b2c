"""Article 19 notice planning: exactly the partners that received the person's data."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway import retention
from gateway.protection import Protection
from gateway.store import disclosures
from gateway.store.disclosure_model import Status
from gateway.store.tables import audit_log, audit_pending, subject_notices
from gateway.store.unit_of_work import Connection
from tests.integration.cli_support import admin_env, applied_catalog, rows, run, run_json
from tests.integration.store_support import CLIENT, NHS_NUMBER, T0, new_disclosure, open_store

SECRET_DOB = "2011-04-30"


def seed(url: str, keys: Path, police_kept: timedelta = timedelta(days=365)) -> dict[str, str]:
    """The person's data went to police (received) and the NHS trust (dispatched); a GP was
    denied, a care home's delivery failed, and someone else's went to the DfE."""
    prot = Protection.from_dir(keys)
    cases = {
        "kent-police": (NHS_NUMBER, Status.RECEIPTED, ("identity.name", "identity.date_of_birth")),
        "medway-ft": (
            NHS_NUMBER,
            Status.DISPATCHED,
            ("identity.date_of_birth", "health.allergies[*]"),
        ),
        "riverside-gp": (NHS_NUMBER, Status.DENIED, ("identity.date_of_birth",)),
        "rochester-care": (NHS_NUMBER, Status.FAILED, ("identity.date_of_birth",)),
        "dfe": ("9990005678", Status.RECEIPTED, ("identity.date_of_birth",)),
    }
    ids = {}

    async def work() -> None:
        async with open_store(url) as store:
            for partner, (nhs, status, fields) in cases.items():
                kept = police_kept if partner == "kent-police" else timedelta(days=365)
                new = dataclasses.replace(
                    new_disclosure(prot, partner=partner, nhs_number=nhs, retain_until=T0 + kept),
                    fields_sent=fields,
                )
                ids[partner] = new.id

                async def write(conn: Connection, new=new, status=status) -> None:  # type: ignore[no-untyped-def]
                    if status is Status.DENIED:
                        await disclosures.record_denied(conn, new, actor=CLIENT, at=T0)
                        return
                    await disclosures.record_accepted(
                        conn, new, envelope=b"x", digest="d", actor=CLIENT, at=T0
                    )
                    steps = [Status.DISPATCHED] + (
                        [status] if status is not Status.DISPATCHED else []
                    )
                    for step in steps:
                        await disclosures.transition(
                            conn, new.id, step, event_type=str(step), actor=CLIENT, at=T0
                        )

                await store.write(write)

    asyncio.run(work())
    return ids


def test_notices_go_to_exactly_the_partners_that_received_the_paths(
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    applied_catalog(monkeypatch, sqlite_url, tmp_path)
    ids = seed(sqlite_url, tmp_path / "keys")
    fixes = tmp_path / "fixes.json"
    fixes.write_text(json.dumps({"identity.date_of_birth": SECRET_DOB, "identity.gender": "x"}))
    base = ["subject", "notify", "--nhs-number", NHS_NUMBER, "--reason", "dob corrected"]

    code, plan = run_json(
        capsys, *base, "--kind", "rectification", "--corrections", str(fixes), "--dry-run"
    )
    assert code == 0
    notices = {n["partner"]: n for n in plan["notices"]}
    assert set(notices) == {"kent-police", "medway-ft"}  # not denied, failed or someone else
    assert notices["kent-police"]["disclosure_ids"] == [ids["kent-police"]]
    assert notices["kent-police"]["paths"] == ["identity.date_of_birth", "identity.name"]
    assert notices["medway-ft"]["corrected_paths"] == ["identity.date_of_birth"]
    assert notices["medway-ft"]["partner_name"] != "medway-ft"  # named in full

    code, plan = run_json(capsys, *base, "--kind", "erasure", "--fields", "health", "--dry-run")
    assert code == 0
    assert [n["partner"] for n in plan["notices"]] == ["medway-ft"]
    assert plan["notices"][0]["paths"] == ["health.allergies[*]"]
    assert plan["not_affected"] == ["kent-police"]

    entries = rows(sqlite_url, audit_log) + rows(sqlite_url, audit_pending)
    planned = [e for e in entries if e["action"] == "subject_notice.planned"]
    assert len(planned) == 2
    assert all(SECRET_DOB not in e["details"] and NHS_NUMBER not in e["details"] for e in planned)


def test_bad_requests_are_refused_before_anything_is_sent(
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    admin_env(monkeypatch, sqlite_url, tmp_path)
    seed(sqlite_url, tmp_path / "keys")
    fixes = tmp_path / "fixes.json"
    fixes.write_text(json.dumps({"identity.date_of_birth": SECRET_DOB}))
    base = ["subject", "notify", "--nhs-number", NHS_NUMBER, "--reason", "r"]
    code, _, err = run(capsys, *base, "--kind", "erasure", "--corrections", str(fixes), "--dry-run")
    assert code == 1
    assert "only with a rectification" in err
    code, _, err = run(capsys, *base, "--kind", "restriction", "--fields", "shoe.size", "--dry-run")
    assert code == 1
    assert "'shoe.size' is not a field path" in err
    fixes.write_text(json.dumps({"identity.date_of_birth": "born on a Tuesday"}))
    code, _, err = run(capsys, *base, "--kind", "rectification", "--corrections", str(fixes))
    assert code == 1
    assert "identity.date_of_birth" in err
    assert "type_mismatch" in err
    assert "Tuesday" not in err
    assert SECRET_DOB not in err
    assert rows(sqlite_url, subject_notices) == []  # nothing sent, nothing recorded


def test_a_notice_is_kept_as_long_as_what_it_concerns(
    sqlite_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    applied_catalog(monkeypatch, sqlite_url, tmp_path)
    seed(sqlite_url, tmp_path / "keys", police_kept=timedelta(days=75 * 365))
    code, run_ = run_json(
        capsys,
        "subject",
        "notify",
        "--nhs-number",
        NHS_NUMBER,
        "--reason",
        "wrong person",
        "--kind",
        "erasure",
    )
    # No partner keys are registered here: each notice is recorded as not sent, and kept.
    assert code == 1
    sent = {n["partner"]: n for n in run_["notices"]}
    assert {n["not_sent"] for n in sent.values()} == {"partner_key_missing"}
    [created_at] = {r["created_at"] for r in rows(sqlite_url, subject_notices)}
    schedule = timedelta(days=6 * 365)

    ids = {n["notice_id"]: p for p, n in sent.items()}

    async def purge(years: int) -> tuple[list[str], list[str]]:
        """Run retention `years` after the notices; (partners whose went, partners left)."""
        async with open_store(sqlite_url) as store:
            now = created_at + timedelta(days=years * 365)
            report = await retention.run(store, now=now, records_retention=schedule)
            async with store.read() as conn:
                left = [r.partner_id for r in await conn.execute(select(subject_notices))]
        return sorted(ids[i] for i in report.unsent_notices_deleted), sorted(left)

    assert asyncio.run(purge(5)) == ([], ["kent-police", "medway-ft"])  # within the schedule
    # The police keep what they got for 75 years: so does the council its notice to them.
    assert asyncio.run(purge(7)) == (["medway-ft"], ["kent-police"])
    assert asyncio.run(purge(76)) == (["kent-police"], [])
    deleted = [
        e
        for e in rows(sqlite_url, audit_log) + rows(sqlite_url, audit_pending)
        if e["action"] == "retention.notice_deleted"
    ]
    assert len(deleted) == 2
