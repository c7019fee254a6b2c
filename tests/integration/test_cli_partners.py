"""gateway-admin partners list/show and partners keys add/list/revoke."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from joserfc.jwk import ECKey, RSAKey

from gateway.partner_keys import generate_partner_keys, public_jwk
from gateway.store.tables import partner_keys
from tests.integration.cli_support import applied_catalog, audit_entries, rows, run, run_json

POLICE = "kent-police"


@pytest.fixture(autouse=True)
def catalog(monkeypatch: pytest.MonkeyPatch, sqlite_url: str, tmp_path: Path) -> Path:
    return applied_catalog(monkeypatch, sqlite_url, tmp_path)


@pytest.fixture
def enc_jwk(tmp_path: Path) -> Path:
    private, _ = generate_partner_keys("ec")
    path = tmp_path / "police-enc.jwk.json"
    path.write_text(json.dumps(public_jwk(private)))
    (tmp_path / "police-enc.private.json").write_text(json.dumps(private))
    return path


def test_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    code, listed = run_json(capsys, "partners", "list")
    assert code == 0
    police = {p["id"]: p for p in listed}[POLICE]
    assert (police["channel"], police["usable_enc_keys"]) == ("webhook", 0)
    assert police["target"]["endpoint"].startswith("https://")
    code, shown = run_json(capsys, "partners", "show", POLICE)
    assert code == 0
    assert {a["id"] for a in shown["agreements"]} == {"KM-POL-S2-011", "KM-POL-SG-018"}
    assert shown["keys"] == []
    assert police["dpo_contact"] == shown["dpo_contact"] == "data.protection@kent.police.example"
    assert (shown["ods_code"], shown["ico_registration"], shown["contact"]) == (None, None, None)
    code, _, err = run(capsys, "partners", "show", "nobody")
    assert code == 1
    assert "no partner 'nobody'" in err


def test_show_gives_the_catalog_contacts(capsys: pytest.CaptureFixture[str]) -> None:
    code, shown = run_json(capsys, "partners", "show", "medway-ft")
    assert code == 0
    assert {k: shown[k] for k in ("ods_code", "ico_registration", "contact", "dpo_contact")} == {
        "ods_code": "RPA",
        "ico_registration": None,
        "contact": "lac.health@medway-ft.example",
        "dpo_contact": "dpo@medway-ft.example",
    }
    listed = by_id(run_json(capsys, "partners", "list")[1])
    assert listed["medway-homecare"]["ico_registration"] == "ZA000001"
    assert listed["medway-homecare"]["ods_code"] is None
    code, out, _ = run(capsys, "partners", "show", "medway-ft")
    assert code == 0
    assert "dpo@medway-ft.example" in out
    assert "lac.health@medway-ft.example" in out


def by_id(items: list[dict]) -> dict[str, dict]:  # type: ignore[type-arg]
    return {item["id"]: item for item in items}


def test_add_list_revoke_an_encryption_key(
    enc_jwk: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, added = run_json(capsys, "partners", "keys", "add", POLICE, "--use", "enc",
                           "--jwk", str(enc_jwk), "--kid", "kp-enc-1", "--not-after", "2099-12-31",
                           "--actor", "ig.officer")  # fmt: skip
    assert code == 0
    assert (added["kid"], added["alg"], added["usable_now"]) == ("kp-enc-1", "ECDH-ES+A256KW", True)
    assert added["not_after"].startswith("2100-01-01")  # usable through 31 December
    stored = rows(sqlite_url, partner_keys)
    assert [(k["kid"], k["status"]) for k in stored] == [("kp-enc-1", "active")]
    assert "d" not in stored[0]["jwk"]
    assert run_json(capsys, "partners", "list")[1][0]["usable_enc_keys"] == 0  # bexley-lb
    assert {p["id"]: p for p in run_json(capsys, "partners", "list")[1]}[POLICE][
        "usable_enc_keys"
    ] == 1
    assert ("partner_key_missing", POLICE) not in _due(capsys)

    code, _, err = run(capsys, "partners", "keys", "revoke", POLICE, "kp-enc-1", "--reason",
                       "key compromised", "--actor", "ig.officer")  # fmt: skip
    assert code == 0
    assert "no valid encryption key" in err
    code, listed = run_json(capsys, "partners", "keys", "list", POLICE)
    assert code == 0
    assert [(k["status"], k["usable_now"], k["revoked_reason"]) for k in listed] == [
        ("revoked", False, "key compromised")
    ]
    assert ("partner_key_missing", POLICE) in _due(capsys)

    # A revoked key is never accepted again: not revoked twice, not registered again.
    code, _, err = run(capsys, "partners", "keys", "revoke", POLICE, "kp-enc-1", "--reason", "x")
    assert code == 1
    assert "already revoked" in err
    code, _, err = run(capsys, "partners", "keys", "add", POLICE, "--use", "enc", "--jwk",
                       str(enc_jwk), "--kid", "kp-enc-1")  # fmt: skip
    assert code == 1
    assert "already has a key" in err
    assert rows(sqlite_url, partner_keys)[0]["status"] == "revoked"

    audited = [(e["action"], e["targets"], e["actor_name"]) for e in audit_entries(sqlite_url)]
    assert audited[-2:] == [
        ("partner_key.added", {"partner": POLICE, "kid": "kp-enc-1"}, "ig.officer"),
        ("partner_key.revoked", {"partner": POLICE, "kid": "kp-enc-1"}, "ig.officer"),
    ]


def _due(capsys: pytest.CaptureFixture[str]) -> set[tuple[str, str]]:
    items = run_json(capsys, "agreements", "due")[1]["items"]
    return {(i["kind"], i["subject"]) for i in items}


def test_add_a_pem_signing_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = ECKey.generate_key("P-256")
    pem = tmp_path / "sig.pem"
    pem.write_bytes(key.as_pem(private=False))
    code, added = run_json(capsys, "partners", "keys", "add", POLICE, "--use", "sig",
                           "--pem", str(pem))  # fmt: skip
    assert (code, added["use"], added["alg"]) == (0, "sig", "ES256")
    assert added["kid"] == key.thumbprint()


def test_bad_key_files_are_refused_in_one_line(
    enc_jwk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weak = tmp_path / "weak.jwk.json"
    weak.write_text(json.dumps(RSAKey.generate_key(2048).as_dict(private=False)))
    (tmp_path / "junk.json").write_text("{not json")
    private_key = tmp_path / "police-enc.private.json"
    for path in (private_key, weak, tmp_path / "junk.json", tmp_path / "missing.json"):
        code, _, err = run(capsys, "partners", "keys", "add", POLICE, "--use", "enc",
                           "--jwk", str(path))  # fmt: skip
        assert code == 1, path
        assert err.startswith("error:")
        assert "Traceback" not in err
    assert "private key" in run(capsys, "partners", "keys", "add", POLICE, "--use", "enc",
                                "--jwk", str(private_key))[2]  # fmt: skip
    code, _, err = run(capsys, "partners", "keys", "add", "nobody", "--use", "enc", "--jwk",
                       str(enc_jwk))  # fmt: skip
    assert code == 1
    assert "no partner" in err
    assert run(capsys, "partners", "keys", "add", POLICE, "--use", "enc")[0] == 2
    assert run(capsys, "partners", "keys", "add", POLICE, "--use", "both", "--jwk",
               str(enc_jwk))[0] == 2  # fmt: skip
    assert run(capsys, "partners", "keys", "add", POLICE, "--use", "enc", "--jwk", str(enc_jwk),
               "--not-after", "next year")[0] == 2  # fmt: skip
    assert run(capsys, "partners", "keys", "revoke", POLICE, "nope", "--reason", "x")[0] == 1
    assert run_json(capsys, "partners", "keys", "list", POLICE)[1] == []
