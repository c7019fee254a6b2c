"""The envelope carries the permitted onward recipients and its contract version; it can grow."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from gateway.application.commands import Queued
from gateway.application.submit import SubmitDisclosures
from gateway.keys import CouncilKeyring
from gateway.metrics import Metrics
from gateway.partner_keys import PartnerKey, generate_partner_keys, public_jwk
from gateway.protection import Protection
from gateway.sealing import CONTRACT_VERSION, EnvelopeClaims, EnvelopeError, seal
from tests.unit.test_interop import claims_for, jwcrypto_open
from tests.unit.test_submit import (
    CATALOG,
    EVERYTHING,
    KEYS,
    NOW,
    FakeRecords,
    FakeSealer,
    Snapshot,
    lac,
)

RECIPIENTS = ("Medway school nursing service", "Designated Doctor for looked-after children")


async def test_an_agreement_listing_onward_recipients_puts_them_in_the_envelope() -> None:
    listed = CATALOG.agreements["KM-NHS-LAC-001"].model_copy(
        update={"onward_sharing": "listed", "onward_recipients": RECIPIENTS}
    )
    agreements = {**CATALOG.agreements, listed.id: listed}
    snapshot = Snapshot(agreements, CATALOG.partners, KEYS)
    sealer = FakeSealer()
    submit = SubmitDisclosures(
        org_id="medway-council",
        records=FakeRecords(),
        policy=lambda: snapshot,
        sealer=sealer,
        protection=Protection(b"i" * 32, b"d" * 32),
        metrics=Metrics(),
        clock=lambda: NOW,
        deliverable_channels=frozenset({"webhook", "mesh"}),
        on_accepted=lambda: None,
    )
    assert isinstance(await submit(EVERYTHING, lac()), Queued)
    [claims] = sealer.sealed
    jwt = claims.to_jwt()
    assert (jwt["onward_sharing"], jwt["onward_recipients"]) == ("listed", list(RECIPIENTS))
    assert jwt["contract_version"] == CONTRACT_VERSION == 1


def test_a_second_jose_library_reads_both_claims(tmp_path: Path) -> None:
    ring = CouncilKeyring(tmp_path / "keys")
    ring.generate("ES256", NOW)
    enc, _ = generate_partner_keys("ec")
    recipient = PartnerKey.from_jwk("p-ec", public_jwk(enc), use="enc")
    base = claims_for("p-ec")
    claims = EnvelopeClaims(
        **{**_fields(base), "iat": NOW, "onward_recipients": ("Crown Prosecution Service",)}
    )
    opened = jwcrypto_open(
        seal(claims, ring.active_signer(NOW), recipient).body, enc, ring.jwks(NOW)
    )
    assert opened["onward_recipients"] == ["Crown Prosecution Service"]
    assert opened["contract_version"] == 1
    assert EnvelopeClaims.from_jwt(opened) == claims


def _fields(claims: EnvelopeClaims) -> dict[str, Any]:
    return {name: getattr(claims, name) for name in EnvelopeClaims.__dataclass_fields__}


def test_no_list_when_nothing_is_listed_and_old_envelopes_are_version_1() -> None:
    jwt = claims_for("p").to_jwt()
    assert "onward_recipients" not in jwt
    del jwt["contract_version"]  # sealed before the claim existed
    parsed = EnvelopeClaims.from_jwt(jwt)
    assert (parsed.contract_version, parsed.onward_recipients) == (1, ())


def test_claims_a_reader_does_not_know_are_ignored() -> None:
    jwt = {**claims_for("p").to_jwt(), "contract_version": 7, "exp": 1, "something_new": {"x": 1}}
    assert EnvelopeClaims.from_jwt(jwt).retain_until == date(2027, 7, 1)


@pytest.mark.parametrize(
    ("claim", "value"),
    [("onward_recipients", "CPS"), ("onward_recipients", [""]), ("contract_version", True)],
)
def test_known_claims_of_the_wrong_type_are_refused(claim: str, value: Any) -> None:
    jwt = {**claims_for("p").to_jwt(), claim: value}
    with pytest.raises(EnvelopeError, match=claim):
        EnvelopeClaims.from_jwt(jwt)
