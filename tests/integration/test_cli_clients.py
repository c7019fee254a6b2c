"""gateway-admin clients add/list/revoke/rotate: tokens shown once, stored hashed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.clients import hash_token
from gateway.store.tables import clients
from tests.integration.cli_support import applied_catalog, audit_entries, rows, run, run_json


@pytest.fixture(autouse=True)
def catalog(monkeypatch: pytest.MonkeyPatch, sqlite_url: str, tmp_path: Path) -> Path:
    return applied_catalog(monkeypatch, sqlite_url, tmp_path)


def test_add_list_rotate_revoke(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, added = run_json(capsys, "clients", "add", "mosaic-childrens", "--agreements",
                           "KM-NHS-LAC-001, KM-GP-005", "--actor", "ops.lead")  # fmt: skip
    assert code == 0
    assert set(added) == {"name", "token"}
    assert len(added["token"]) >= 43
    stored = rows(sqlite_url, clients)
    assert [(c["name"], c["token_hash"]) for c in stored] == [
        ("mosaic-childrens", hash_token(added["token"]))
    ]
    assert sorted(stored[0]["allowed_agreements"]) == ["KM-GP-005", "KM-NHS-LAC-001"]

    code, out, _ = run(capsys, "clients", "list", "--json")
    listed = json.loads(out)
    assert code == 0
    assert added["token"] not in out
    assert listed[0]["agreements"] == ["KM-GP-005", "KM-NHS-LAC-001"]
    assert listed[0]["status"] == "active"

    code, out, _ = run(capsys, "clients", "rotate", "mosaic-childrens")
    new_token = out.strip().splitlines()[-1]
    assert code == 0
    assert new_token != added["token"]
    assert rows(sqlite_url, clients)[0]["token_hash"] == hash_token(new_token)

    assert run(capsys, "clients", "revoke", "mosaic-childrens")[0] == 0
    assert run_json(capsys, "clients", "list")[1][0]["status"] == "revoked"
    code, _, err = run(capsys, "clients", "rotate", "mosaic-childrens")
    assert code == 1
    assert "revoked" in err
    assert run(capsys, "clients", "revoke", "mosaic-childrens")[0] == 1

    entries = audit_entries(sqlite_url)
    assert [e["action"] for e in entries][-3:] == ["client.added", "client.rotated",
                                                   "client.revoked"]  # fmt: skip
    text = json.dumps([e["details"] for e in entries]) + json.dumps([e["targets"] for e in entries])
    assert added["token"] not in text
    assert new_token not in text
    assert hash_token(new_token) not in text


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (("clients", "add", "x", "--agreements", "NO-SUCH-AGREEMENT"), 1),
        (("clients", "add", "bad name!", "--agreements", "KM-GP-005"), 2),
        (("clients", "add", "x", "--agreements", " , "), 2),
        (("clients", "add", "x"), 2),
        (("clients", "revoke", "nobody"), 1),
        (("clients", "rotate", "nobody"), 1),
    ],
)
def test_refusals(
    argv: tuple[str, ...], code: int, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result, out, err = run(capsys, *argv)
    assert result == code
    assert "Traceback" not in err
    assert out == ""
    assert rows(sqlite_url, clients) == []


def test_a_name_is_registered_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "clients", "add", "lcs-adults", "--agreements", "KM-GP-005")[0] == 0
    code, out, err = run(capsys, "clients", "add", "lcs-adults", "--agreements", "KM-GP-005")
    assert code == 1
    assert "exists" in err
    assert out == ""
