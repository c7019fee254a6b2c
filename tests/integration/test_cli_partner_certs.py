"""gateway-admin partners certs add/list/revoke, keys smime, and both in agreements due."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.store.tables import partner_certs
from tests.integration.cli_support import applied_catalog, audit_entries, rows, run, run_json
from tests.smime_pki import Issued, make_ca, make_partner_cert

DWP = "dwp-counter-fraud"


@pytest.fixture(autouse=True)
def catalog(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> Path:
    return applied_catalog(monkeypatch, database_url, tmp_path)


@pytest.fixture(scope="module")
def ca() -> Issued:
    return make_ca()


def test_add_list_revoke_a_certificate(
    ca: Issued,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bundle, _ = ca.write(tmp_path, "partner-ca")
    monkeypatch.setenv("GATEWAY_SMIME_CA_BUNDLE", str(bundle))
    cert, _ = make_partner_cert(ca, days=20).write(tmp_path, "dwp")
    code, added = run_json(capsys, "partners", "certs", "add", DWP, "--cert", str(cert),
                           "--actor", "ig.officer")  # fmt: skip
    assert code == 0
    assert added["usable"] is True
    assert [r["fingerprint"] for r in rows(database_url, partner_certs)] == [added["fingerprint"]]
    code, _, err = run(capsys, "partners", "certs", "add", DWP, "--cert", str(cert))
    assert (code, "already has this certificate" in err) == (1, True)

    stranger, _ = make_partner_cert(days=20).write(tmp_path, "stranger")  # self-signed
    code, _, err = run(capsys, "partners", "certs", "add", DWP, "--cert", str(stranger))
    assert code == 1
    assert "does not chain" in err
    assert len(rows(database_url, partner_certs)) == 1  # nothing half-written

    code, due = run_json(capsys, "agreements", "due", "--days", "30")
    assert code == 0
    kinds = {(i["kind"], i["subject"]) for i in due["items"]}
    assert ("partner_cert_expiring", DWP) in kinds
    assert ("partner_key_missing", DWP) not in kinds  # email needs no JWK

    code, listed = run_json(capsys, "partners", "certs", "list", DWP)
    assert (code, [c["status"] for c in listed]) == (0, ["active"])
    code, _out, err = run(capsys, "partners", "certs", "revoke", DWP, added["fingerprint"],
                         "--reason", "key compromised")  # fmt: skip
    assert code == 0, err
    assert "no usable certificate left" in err
    assert rows(database_url, partner_certs)[0]["status"] == "revoked"
    code, due = run_json(capsys, "agreements", "due")
    assert ("partner_cert_missing", DWP) in {(i["kind"], i["subject"]) for i in due["items"]}
    actions = [e["action"] for e in audit_entries(database_url)]
    assert actions[-2:] == ["partner_cert.added", "partner_cert.revoked"]
    code, _, err = run(capsys, "partners", "certs", "revoke", DWP, added["fingerprint"],
                       "--reason", "again")  # fmt: skip
    assert code == 1


def test_partners_show_lists_certificates(
    ca: Issued, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, shown = run_json(capsys, "partners", "show", DWP)
    assert (code, shown["certs"]) == (0, [])
    first, _ = make_partner_cert(ca, days=20).write(tmp_path, "first")
    second, _ = make_partner_cert(ca, days=90).write(tmp_path, "second")
    fingerprints = []
    for cert in (first, second):
        code, added = run_json(capsys, "partners", "certs", "add", DWP, "--cert", str(cert))
        assert code == 0
        fingerprints.append(added["fingerprint"])
    code, _, err = run(
        capsys, "partners", "certs", "revoke", DWP, fingerprints[0], "--reason", "replaced"
    )
    assert code == 0, err

    code, shown = run_json(capsys, "partners", "show", DWP)
    assert code == 0
    certs = {c["fingerprint"]: c for c in shown["certs"]}
    assert set(certs) == set(fingerprints)
    assert (certs[fingerprints[0]]["status"], certs[fingerprints[0]]["usable"]) == (
        "revoked",
        False,
    )
    assert (certs[fingerprints[1]]["status"], certs[fingerprints[1]]["usable"]) == ("active", True)
    assert all(c["subject"] and c["not_after"] for c in certs.values())

    code, out, _ = run(capsys, "partners", "show", DWP)
    assert code == 0
    assert "S/MIME certificates of" in out
    for fingerprint in fingerprints:
        assert fingerprint[:16] in out
    assert certs[fingerprints[1]]["not_after"][:10] in out
    assert "revoked" in out


def test_council_smime_certificate_is_installed_shown_and_due(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "keys", "smime")
    assert code == 1
    assert "no S/MIME certificate installed" in err
    code, made = run_json(capsys, "keys", "smime", "--self-signed")
    assert code == 0
    key_file = tmp_path / "keys" / "smime-key.pem"
    assert key_file.stat().st_mode & 0o077 == 0
    code, _, err = run(capsys, "keys", "smime", "--self-signed")
    assert code == 1  # never over an installed certificate
    assert "installed already" in err
    code, shown = run_json(capsys, "keys", "smime")
    assert (code, shown["fingerprint"]) == (0, made["fingerprint"])
    code, due = run_json(capsys, "agreements", "due", "--days", "400")
    assert ("council_smime_expiring", "council") in {
        (i["kind"], i["subject"]) for i in due["items"]
    }
    other = make_partner_cert()
    cert, _ = other.write(tmp_path, "other")
    code, _, err = run(capsys, "keys", "smime", "--cert", str(cert), "--key", str(key_file))
    assert code == 1
    assert "does not belong" in err
