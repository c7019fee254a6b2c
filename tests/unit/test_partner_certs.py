"""Partner S/MIME certificates: the checks on registration and the choice at send time."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.partner_certs import (
    PARTNER_CERT_MISSING,
    PARTNER_CERT_REVOKED,
    PartnerCertError,
    certificate_for,
    check_certificate,
)
from tests.smime_pki import Issued, make_ca, make_partner_cert

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def ca() -> Issued:
    return make_ca()


@pytest.fixture(scope="module")
def issued(ca: Issued) -> Issued:
    return make_partner_cert(ca)


def _code(pem: bytes, **kwargs: object) -> str:
    with pytest.raises(PartnerCertError) as caught:
        check_certificate("dwp-counter-fraud", pem, now=NOW, **kwargs)  # type: ignore[arg-type]
    return caught.value.code


def test_a_good_certificate_is_registered_with_its_facts(ca: Issued, issued: Issued) -> None:
    trusted = [x509.load_pem_x509_certificate(ca.cert_pem)]
    cert = check_certificate("dwp-counter-fraud", issued.cert_pem, now=NOW, trusted=trusted)
    assert cert.emails == ("fraud.referrals@dwp.example",)
    assert len(cert.fingerprint) == 64
    assert cert.usable_at(NOW)
    assert "PRIVATE" not in cert.pem


def test_expired_and_not_yet_valid_are_refused(issued: Issued) -> None:
    assert _code(make_partner_cert(days=-1).cert_pem) == "partner_cert_expired"
    with pytest.raises(PartnerCertError) as caught:
        check_certificate("p", issued.cert_pem, now=NOW - timedelta(days=30))
    assert caught.value.code == "partner_cert_expired"


def test_key_usage_must_allow_encryption_to_it() -> None:
    assert _code(make_partner_cert(key_encipherment=False).cert_pem) == "partner_cert_key_usage"
    server_only = make_partner_cert(eku=ExtendedKeyUsageOID.SERVER_AUTH)
    assert _code(server_only.cert_pem) == "partner_cert_key_usage"
    assert check_certificate("p", make_partner_cert(eku=None).cert_pem, now=NOW).usable_at(NOW)


def test_only_rsa_certificates_and_never_a_private_key(issued: Issued) -> None:
    assert _code(make_partner_cert(ec_key=True).cert_pem) == "partner_cert_invalid"
    assert _code(issued.key_pem + issued.cert_pem) == "partner_cert_invalid"
    assert _code(b"not a certificate") == "partner_cert_invalid"


def test_chain_to_the_configured_bundle(issued: Issued) -> None:
    other_ca = [x509.load_pem_x509_certificate(make_ca("Another CA").cert_pem)]
    assert _code(issued.cert_pem, trusted=other_ca) == "partner_cert_untrusted"
    assert _code(make_partner_cert().cert_pem, trusted=other_ca) == "partner_cert_untrusted"


def test_choice_at_send_time_never_falls_back_once_a_partner_has_certificates(
    issued: Issued,
) -> None:
    cert = check_certificate("p", issued.cert_pem, now=NOW)
    assert certificate_for([], NOW) == (None, None)  # TLS-only baseline
    assert certificate_for([cert], NOW) == (cert, None)
    revoked = dataclasses.replace(cert, status="revoked")
    assert certificate_for([revoked], NOW) == (None, PARTNER_CERT_REVOKED)
    assert certificate_for([cert], cert.not_after) == (None, PARTNER_CERT_MISSING)
    later = dataclasses.replace(cert, fingerprint="b" * 64, not_after=cert.not_after + timedelta(1))
    assert certificate_for([revoked, cert, later], NOW) == (later, None)
