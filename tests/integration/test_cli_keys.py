"""gateway-admin keys generate/list/rotate/retire, mirrored into the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.store.tables import council_keys
from tests.integration.cli_support import admin_env, audit_entries, rows, run, run_json


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch, sqlite_url: str, tmp_path: Path) -> Path:
    admin_env(monkeypatch, sqlite_url, tmp_path)
    return tmp_path


def test_generate_rotate_retire(
    env: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "db", "upgrade")[0] == 0
    assert run_json(capsys, "keys", "list") == (0, [])

    code, first = run_json(capsys, "keys", "generate", "--actor", "ops.lead")
    assert (code, first["status"], first["alg"]) == (0, "active", "ES256")
    code, second = run_json(capsys, "keys", "generate", "--alg", "Ed25519")
    assert (code, second["status"]) == (0, "pending")
    assert (env / "keys" / f"{first['kid']}.jwk.json").is_file()

    code, rotated = run_json(capsys, "keys", "rotate", "--overlap", "P7D")
    assert (code, rotated["kid"], rotated["status"]) == (0, second["kid"], "active")
    listed = {k["kid"]: k for k in run_json(capsys, "keys", "list")[1]}
    old = listed[first["kid"]]
    assert (old["status"], old["published"]) == ("superseded", True)
    assert old["published_until"] is not None

    code, _, err = run(capsys, "keys", "retire", second["kid"])
    assert code == 1
    assert "rotate first" in err
    assert run(capsys, "keys", "retire", "no-such-kid")[0] == 1
    code, retired = run_json(capsys, "keys", "retire", first["kid"])
    assert (code, retired["status"]) == (0, "retired")
    assert not (env / "keys" / f"{first['kid']}.jwk.json").exists()

    mirrored = {r["kid"]: r for r in rows(sqlite_url, council_keys)}
    assert {k: r["status"] for k, r in mirrored.items()} == {
        first["kid"]: "retired",
        second["kid"]: "active",
    }
    assert all("d" not in r["jwk"] for r in mirrored.values())
    actions = [e["action"] for e in audit_entries(sqlite_url)]
    assert actions == ["council_key.generated", "council_key.generated", "council_key.rotated",
                       "council_key.retired"]  # fmt: skip
    assert run(capsys, "keys", "rotate", "--overlap", "thirty days")[0] == 2
    assert run(capsys, "keys", "generate", "--alg", "RS256")[0] == 2


def test_sftp_key_is_made_once_and_shown(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, first = run_json(capsys, "keys", "sftp")
    assert code == 0
    assert first["public_key"].startswith("ssh-ed25519 ")
    assert first["fingerprint"].startswith("SHA256:")
    key_file = env / "keys" / "sftp-client.ed25519"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert run_json(capsys, "keys", "sftp") == (0, first)  # the same key, not a new one
