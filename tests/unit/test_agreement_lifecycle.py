"""Status changes by an administrator, and the due report (pure functions of the clock)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest

from gateway.agreement_lifecycle import AgreementStatusError, due_report, next_status
from gateway.partner_certs import PartnerCertificate
from gateway.partner_keys import PartnerKey, generate_partner_keys, public_jwk
from gateway.store.agreements_repo import StoredAgreement

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


def stored(id_: str, status: str = "active", *, ends: date | None = None,
           review: date | None = None, partner: str = "p1") -> StoredAgreement:  # fmt: skip
    return StoredAgreement(id_, 1, status, partner, date(2026, 1, 1), ends, review, {}, "h",
                           "ig", NOW)  # fmt: skip


def enc_key(partner: str, **window: datetime) -> PartnerKey:
    private, _ = generate_partner_keys("ec")
    return PartnerKey.from_jwk(partner, public_jwk(private), use="enc", **window)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("action", "current", "expected"),
    [("suspend", "active", "suspended"), ("resume", "suspended", "active"),
     ("terminate", "active", "terminated"), ("terminate", "suspended", "terminated")],
)  # fmt: skip
def test_allowed_transitions(action: str, current: str, expected: str) -> None:
    assert next_status(action, current) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("action", "current"),
    [("suspend", "suspended"), ("resume", "active"), ("resume", "terminated"),
     ("suspend", "terminated"), ("terminate", "terminated"), ("suspend", "expired")],
)  # fmt: skip
def test_refused_transitions(action: str, current: str) -> None:
    with pytest.raises(AgreementStatusError) as caught:
        next_status(action, current)  # type: ignore[arg-type]
    assert caught.value.code == "agreement_status_transition_invalid"


def test_due_report_window_overdue_and_keys() -> None:
    agreements = [
        stored("ENDS-SOON", ends=date(2027, 3, 20), review=date(2028, 1, 1)),
        stored("OVERDUE", review=date(2027, 1, 1), partner="p2"),
        stored("LATER", ends=date(2027, 6, 1), review=date(2027, 6, 1)),
        stored("GONE", "terminated", ends=date(2027, 3, 2), partner="p3"),
    ]
    keys = {"p1": [enc_key("p1")], "p2": [enc_key("p2", not_after=NOW + timedelta(days=10))]}
    items = [(i.kind, i.subject, i.days_left) for i in due_report(agreements, keys, now=NOW,
                                                                 days=30)]  # fmt: skip
    assert items == [
        ("review_due", "OVERDUE", -59),
        ("partner_key_expiring", "p2", 10),
        ("effective_to", "ENDS-SOON", 19),
    ]
    revoked = {"p1": [enc_key("p1").revoke("compromised", NOW)], "p2": keys["p2"]}
    kinds = {(i.kind, i.subject) for i in due_report(agreements, revoked, now=NOW, days=30)}
    assert ("partner_key_missing", "p1") in kinds
    assert ("partner_key_missing", "p3") not in kinds  # terminated: nothing to send


def test_due_report_email_partners_certificates_and_the_councils() -> None:
    cert = PartnerCertificate(
        "mail", "a" * 64, "CN=x", (), NOW - timedelta(days=1), NOW + timedelta(days=12), "PEM"
    )
    agreements = [stored("BY-MAIL", partner="mail"), stored("TLS-ONLY", partner="plain")]
    report = due_report(
        agreements,
        {},  # email partners need no JWK: no partner_key_missing for them
        now=NOW,
        days=30,
        email_certs={"mail": [cert], "plain": []},
        council_smime_until=NOW + timedelta(days=5),
    )
    assert [(i.kind, i.subject, i.days_left) for i in report] == [
        ("council_smime_expiring", "council", 5),
        ("partner_cert_expiring", "mail", 12),
    ]
    revoked = dataclasses.replace(cert, status="revoked")
    kinds = {
        i.kind
        for i in due_report(agreements, {}, now=NOW, days=30, email_certs={"mail": [revoked]})
    }
    assert "partner_cert_missing" in kinds
