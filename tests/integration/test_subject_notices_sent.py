"""Article 19 notices sent: exactly the partners that received the person's data get one,
sealed to their key, which a partner on another JOSE library (jwcrypto) opens and verifies,
and which is receipted and tracked like a disclosure."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jwcrypto import jwe as cjwe
from jwcrypto import jwk as cjwk
from jwcrypto import jws as cjws

from gateway.application.partner_key_admin import add_partner_key
from gateway.keys import CouncilKeyring
from gateway.notice_envelope import NOTICE_TYP
from gateway.partner_keys import PartnerKey, generate_partner_keys, public_jwk
from gateway.protection import Protection
from gateway.receipts import make_receipt
from gateway.service import Gateway
from gateway.settings import load_settings
from gateway.store import disclosures
from gateway.store.disclosure_model import Status
from gateway.store.tables import outbox
from gateway.store.unit_of_work import Connection
from tests.integration.cli_support import applied_catalog, audit_entries, rows, run_json
from tests.integration.store_support import CLIENT, NHS_NUMBER, new_disclosure, open_store

SECRET_DOB = "2011-04-30"
REASON = "Date of birth typed wrongly by Jordan's worker"
# partner -> (agreement, purpose, status, fields sent)
SENT = {
    "kent-police": (
        "KM-POL-SG-018",
        "safeguarding_children",
        Status.RECEIPTED,
        ("identity.name", "identity.date_of_birth"),
    ),
    "km-icb": ("KM-ICB-COM-004", "commissioning", Status.DISPATCHED, ("identity.date_of_birth",)),
    "riverside-gp": ("KM-GP-005", "direct_care", Status.DENIED, ("identity.date_of_birth",)),
}
Keys = dict[str, tuple[dict[str, Any], dict[str, Any]]]


def seed(url: str, keys_dir: Path, *, keyless: str = "") -> tuple[dict[str, str], Keys]:
    """Disclosures about the person (and one about someone else), partner keys registered;
    `keyless`: a partner that also received the person's data but has no key registered."""
    prot = Protection.from_dir(keys_dir)
    now = datetime.now(UTC)
    ids: dict[str, str] = {}
    partner_keys: Keys = {p: generate_partner_keys("ec") for p in ("kent-police", "km-icb")}

    async def work() -> None:
        async with open_store(url) as store:
            cases = [(p, NHS_NUMBER, *facts) for p, facts in SENT.items()]
            cases.append(("medway-ft", "9990005678", *SENT["kent-police"]))  # someone else
            if keyless:
                cases.append((keyless, NHS_NUMBER, *SENT["kent-police"]))
            for partner, nhs, agreement, purpose, status, fields in cases:
                new = dataclasses.replace(
                    new_disclosure(prot, partner=partner, nhs_number=nhs),
                    agreement_id=agreement,
                    agreement_version=1,
                    purpose=purpose,
                    fields_sent=fields,
                    retain_until=now + timedelta(days=365),
                )
                ids.setdefault(partner, new.id)

                async def write(conn: Connection, new=new, status=status) -> None:  # type: ignore[no-untyped-def]
                    if status is Status.DENIED:
                        await disclosures.record_denied(conn, new, actor=CLIENT, at=now)
                        return
                    await disclosures.record_accepted(
                        conn, new, envelope=b"x", digest="d", actor=CLIENT, at=now
                    )
                    for step in dict.fromkeys((Status.DISPATCHED, status)):
                        await disclosures.transition(
                            conn, new.id, step, event_type=str(step), actor=CLIENT, at=now
                        )

                await store.write(write)
            for partner, (enc, sig) in partner_keys.items():
                for private, use in ((enc, "enc"), (sig, "sig")):
                    key = PartnerKey.from_jwk(
                        partner, public_jwk(private), use=use, not_before=now - timedelta(hours=1)
                    )
                    await add_partner_key(store, key, actor=CLIENT, at=now)

    asyncio.run(work())
    return ids, partner_keys


def jwcrypto_open(body: bytes, enc: dict[str, Any], jwks: dict[str, Any]) -> dict[str, Any]:
    """A partner on jwcrypto: decrypt with its key, verify our signature by kid, check typ."""
    outer = cjwe.JWE()
    outer.deserialize(body.decode(), key=cjwk.JWK(**enc))
    inner = cjws.JWS()
    inner.deserialize(outer.payload.decode())
    assert inner.jose_header["typ"] == NOTICE_TYP  # never mistaken for a disclosure
    inner.verify(cjwk.JWKSet.from_json(json.dumps(jwks)).get_key(inner.jose_header["kid"]))
    result: dict[str, Any] = json.loads(inner.payload)
    return result


def test_a_notice_reaches_exactly_the_recipients_is_opened_and_receipted(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    applied_catalog(monkeypatch, database_url, tmp_path)
    keys_dir = tmp_path / "keys"
    ids, partner_keys = seed(database_url, keys_dir)
    fixes = tmp_path / "fixes.json"
    fixes.write_text(json.dumps({"identity.date_of_birth": SECRET_DOB}))

    code, run = run_json(
        capsys,
        *("subject", "notify", "--nhs-number", NHS_NUMBER, "--kind", "rectification"),
        *("--reason", REASON, "--corrections", str(fixes), "--actor", "dpo.example"),
    )
    assert code == 0
    sent = {n["partner"]: n for n in run["notices"]}
    assert set(sent) == {"kent-police", "km-icb"}  # not the GP (denied), not someone else's
    assert all(n["status"] == "queued" for n in sent.values())

    envelopes = {r["disclosure_id"]: bytes(r["envelope"]) for r in rows(database_url, outbox)}
    jwks = CouncilKeyring(keys_dir).jwks(datetime.now(UTC))
    opened = {
        partner: jwcrypto_open(envelopes[n["notice_id"]], partner_keys[partner][0], jwks)
        for partner, n in sent.items()
    }
    police = opened["kent-police"]
    assert police["aud"] == "kent-police"
    assert police["jti"] == sent["kent-police"]["notice_id"]
    assert police["notice"]["kind"] == "rectification"
    assert police["notice"]["reason"] == REASON
    assert police["notice"]["disclosures"] == [ids["kent-police"]]
    assert police["notice"]["fields"] == ["identity.date_of_birth", "identity.name"]
    assert police["notice"]["corrections"] == {"identity.date_of_birth": SECRET_DOB}
    # The ICB received an age band, so it is told the corrected age band, never the date.
    icb = opened["km-icb"]["notice"]
    assert icb["disclosures"] == [ids["km-icb"]]
    assert set(icb["corrections"]) == {"identity.date_of_birth"}
    assert icb["corrections"]["identity.date_of_birth"] != SECRET_DOB
    assert "-" in icb["corrections"]["identity.date_of_birth"]  # e.g. "10-15"

    async def receipt() -> str:
        gateway = await Gateway.open(load_settings())
        try:
            notice_id = sent["kent-police"]["notice_id"]
            token = make_receipt(
                partner_id="kent-police",
                council_id=gateway.settings.org_id,
                message_id=notice_id,
                body_received=envelopes[notice_id],
                status="received",
                signing_key=partner_keys["kent-police"][1],
                now=gateway.clock(),
                receipt_id=str(uuid.uuid4()),
            )
            recorded = await gateway.receipts.accept(token)
            return str(recorded.status)
        finally:
            await gateway.close()

    assert asyncio.run(receipt()) == "receipted"
    code, tracked = run_json(capsys, "subject", "notices", "--nhs-number", NHS_NUMBER)
    assert code == 0
    status = {n["partner"]: n for n in tracked}
    assert status["kent-police"]["status"] == "receipted"
    assert status["kent-police"]["receipted_at"] is not None
    assert status["km-icb"]["status"] == "queued"
    assert status["km-icb"]["requested_by"] == "dpo.example"

    # A notice is no disclosure: the log and the subject's disclosures leave it out.
    code, log = run_json(capsys, "disclosures", "list")
    assert code == 0
    assert not {n["notice_id"] for n in sent.values()} & {d["id"] for d in log}

    entries = audit_entries(database_url)
    queued = [e for e in entries if e["action"] == "subject_notice.queued"]
    assert {e["targets"]["partner"] for e in queued} == {"kent-police", "km-icb"}
    text = json.dumps(entries, default=str) + json.dumps(rows(database_url, outbox), default=str)
    assert SECRET_DOB not in text
    assert "Jordan" not in text


def test_a_partner_with_no_key_is_recorded_as_not_told_and_the_command_fails(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    applied_catalog(monkeypatch, database_url, tmp_path)
    seed(database_url, tmp_path / "keys", keyless="kent-cc")
    code, run = run_json(
        capsys,
        *("subject", "notify", "--nhs-number", NHS_NUMBER, "--kind", "restriction"),
        *("--reason", "Accuracy contested"),
    )
    assert code == 1  # the DPO must follow this partner up by other means
    sent = {n["partner"]: n for n in run["notices"]}
    assert sent["kent-cc"]["status"] == "not_sent"
    assert sent["kent-cc"]["not_sent"] == "partner_key_missing"
    assert sent["kent-police"]["status"] == "queued"  # the others still go
    code, tracked = run_json(capsys, "subject", "notices", "--nhs-number", NHS_NUMBER)
    assert {n["partner"]: n["status"] for n in tracked}["kent-cc"] == "not_sent"
    not_sent = [e for e in audit_entries(database_url) if e["action"] == "subject_notice.not_sent"]
    assert [e["details"]["reason"] for e in not_sent] == ["partner_key_missing"]
