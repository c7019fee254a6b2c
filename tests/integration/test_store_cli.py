"""gateway-admin db/audit/retention/subject-report, called as functions against real databases."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from joserfc.jwk import ECKey
from sqlalchemy import update

from gateway.cli.admin import main
from gateway.protection import Protection
from gateway.store.database import Store
from gateway.store.tables import audit_log
from tests.integration.store_support import NHS_NUMBER, new_disclosure, record_accepted


@pytest.fixture
def env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", database_url)
    monkeypatch.setenv("GATEWAY_KEYS_DIR", str(tmp_path / "keys"))
    return tmp_path


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    capsys.readouterr()
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def seed(url: str, keys: Path) -> str:
    async def work() -> str:
        store = await Store.open(url)
        new = new_disclosure(Protection.from_dir(keys))
        await record_accepted(store, new, envelope=b"x")
        await store.close()
        return new.id

    return asyncio.run(work())


def tamper(url: str) -> None:
    async def work() -> None:
        store = await Store.open(url)
        await store.write(
            lambda conn: conn.execute(
                update(audit_log).where(audit_log.c.seq == 1).values(action="x")
            )
        )
        await store.close()

    asyncio.run(work())


def test_upgrade_verify_checkpoint_report_and_retention(
    env: Path,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "upgrade"]) == 0
    disclosure_id = seed(database_url, env / "keys")

    key = ECKey.generate_key("P-256", parameters={"kid": "council-sig-cli"})
    (env / "signing.jwk").write_text(json.dumps(key.as_dict(private=True)))
    (env / "jwks.json").write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    assert main(["audit", "checkpoint", "--signing-key", str(env / "signing.jwk")]) == 0

    code, report = run_json(capsys, "audit", "verify", "--jwks", str(env / "jwks.json"))
    assert code == 0
    assert (report["ok"], report["entries"], report["checkpoints"]) == (True, 1, 1)
    assert report["signatures_checked"] is True

    code, found = run_json(capsys, "subject-report", "--nhs-number", NHS_NUMBER, "--actor", "dpo")
    assert code == 0
    assert [d["id"] for d in found["disclosures"]] == [disclosure_id]

    monkeypatch.setenv("GATEWAY_RECORDS_RETENTION", "P30D")
    code, dry = run_json(capsys, "retention", "run", "--dry-run")
    assert code == 0
    assert dry.pop("now")
    assert dry == {
        "dry_run": True,
        "envelopes_purged": [],
        "metadata_deleted": [],
        "records_kept_past_schedule": 0,
        "unsent_notices_deleted": [],
        "idempotency_keys_deleted": 0,
        "records_schedule_days": 30,
    }

    tamper(database_url)
    code, broken = run_json(capsys, "audit", "verify")
    assert code == 1
    assert broken["broken"]["code"] == "entry_altered"
    assert broken["broken"]["seq"] == 1


def test_people_get_tables_and_clear_errors(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "upgrade"]) == 0
    assert main(["audit", "verify"]) == 0
    assert "audit chain: OK" in capsys.readouterr().out
    assert main(["subject-report"]) == 2
    assert "--nhs-number or --local-id" in capsys.readouterr().err
    assert main(["subject-report", "--nhs-number", "9990001234", "--actor", "dpo"]) == 1
    err = capsys.readouterr().err
    assert "not a valid NHS number" in err
    assert "9990001234" not in err
    (env / "bad.jwk").write_text("{}")
    assert main(["audit", "checkpoint", "--signing-key", str(env / "bad.jwk")]) == 1
    assert "not a private EC or OKP JWK" in capsys.readouterr().err
