"""`gateway-admin audit verify --anchors` with a time-stamp authority configured: every anchored
checkpoint needs a time-stamp whose certificate chains to GATEWAY_AUDIT_TSA_CA, by default."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import ECKey

from gateway import audit
from gateway.audit_anchor import AnchorFile, CheckpointAnchor, TimeStampAuthority, TsaTrust
from gateway.cli.admin import main
from gateway.protection import Protection
from tests.integration.store_support import (
    T0,
    checkpoint_keys,
    new_disclosure,
    open_store,
    record_accepted,
)
from tests.security.support import Tsa, tsa_files


@pytest.fixture
def env(sqlite_url: str, tmp_path: Path, tsa: Tsa, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("GATEWAY_KEYS_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("GATEWAY_AUDIT_ANCHOR", str(tmp_path / "anchor.jsonl"))
    monkeypatch.setenv("GATEWAY_AUDIT_TSA_URL", tsa.url)
    monkeypatch.setenv("GATEWAY_AUDIT_TSA_CA", str(tsa.ca_path))
    return tmp_path


async def _admin(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    """Run gateway-admin off the test's loop (the TSA answers on it); its --json output."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, [*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


async def test_verify_checks_the_anchor_and_its_time_stamps(
    env: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await asyncio.to_thread(main, ["db", "upgrade"]) == 0
    async with open_store(sqlite_url) as store:
        await record_accepted(
            store, new_disclosure(Protection.from_dir(env / "keys")), envelope=b"x"
        )
    key = ECKey.generate_key("P-256", parameters={"kid": "council-sig-cli"})
    (env / "signing.jwk").write_text(json.dumps(key.as_dict(private=True)))
    (env / "jwks.json").write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    signed = ["audit", "checkpoint", "--signing-key", str(env / "signing.jwk")]
    assert await asyncio.to_thread(main, signed) == 0
    anchor = env / "anchor.jsonl"
    line = json.loads(anchor.read_text())
    assert line["rfc3161"]  # stamped through the CLI's own settings

    verify = ["audit", "verify", "--jwks", str(env / "jwks.json"), "--anchors", str(anchor)]
    code, report = await _admin(capsys, *verify)
    assert code == 0, report
    assert (report["ok"], report["anchors_checked"]) == (True, 1)

    # A stamp from an authority outside the configured CA does not verify.
    other = tsa_files(env / "other").parent / "ca.crt"
    code, report = await _admin(capsys, *verify, "--tsa-ca", str(other))
    assert code == 1
    assert report["broken"]["code"] == "anchor_timestamp_invalid"

    # Stripping the stamp off the line does not get past the default check either.
    del line["rfc3161"]
    anchor.write_text(json.dumps(line) + "\n")
    code, report = await _admin(capsys, *verify)
    assert code == 1
    assert (report["broken"]["code"], report["broken"]["seq"]) == ("anchor_timestamp_missing", 1)


async def test_a_reply_outside_the_ca_is_never_anchored(
    sqlite_url: str, tmp_path: Path, tsa: Tsa
) -> None:
    signer, _ = checkpoint_keys()
    other = (tsa_files(tmp_path / "other").parent / "ca.crt").read_bytes()
    path = tmp_path / "anchor.jsonl"
    untrusted = CheckpointAnchor(AnchorFile(path), TimeStampAuthority(tsa.url, TsaTrust(other)))
    trusted = CheckpointAnchor(AnchorFile(path), TimeStampAuthority(tsa.url, TsaTrust(tsa.ca)))
    async with open_store(sqlite_url) as store:
        entry = (audit.Actor(audit.ActorKind.ADMIN, "dpo"), "x.done", {}, {"n": 1})
        await store.write(lambda conn: audit.append_many(conn, [entry], at=T0))
        await audit.checkpoint(store, signer, at=T0 + timedelta(seconds=1))
        assert await untrusted.catch_up(store) == 0  # refused, to be tried again
        assert not path.exists() or not path.read_text()
        assert await trusted.catch_up(store) == 1
