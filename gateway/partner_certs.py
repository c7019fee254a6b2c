"""Partners' S/MIME certificates: checked on registration, chosen by a pure function of the clock.

A partner that holds a certificate receives S/MIME (RFC 8551): enveloped to the certificate's
RSA key with AES-256-CBC, which is what `cryptography`'s PKCS7EnvelopeBuilder can make. So a
certificate is refused unless its key is RSA of at least 2048 bits, it is valid now, its key
usage (when stated) allows key encipherment, its extended key usage (when stated) allows email
protection, and, when a CA bundle is configured, it chains to that bundle.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from gateway.errors import ConfigurationError, GatewayError
from gateway.store.partner_certs_repo import StoredPartnerCert

CertStatus = Literal["active", "revoked"]
MIN_RSA_BITS = 2048
PARTNER_CERT_REVOKED = "partner_cert_revoked"
PARTNER_CERT_MISSING = "partner_cert_missing"


class PartnerCertError(GatewayError):
    """A partner certificate is refused; the code says which check failed."""

    code = "partner_cert_invalid"


@dataclass(frozen=True, slots=True)
class PartnerCertificate:
    """One certificate a partner registered for S/MIME (public material only)."""

    partner_id: str
    fingerprint: str  # SHA-256 of the DER, hex: the certificate's id
    subject: str
    emails: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    pem: str
    status: CertStatus = "active"
    revoked_reason: str | None = None
    revoked_at: datetime | None = None

    def usable_at(self, when: datetime) -> bool:
        """Active and inside its validity period."""
        return self.status == "active" and self.not_before <= when < self.not_after

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary (without the PEM)."""
        return {
            "partner": self.partner_id,
            "fingerprint": self.fingerprint,
            "subject": self.subject,
            "emails": list(self.emails),
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "status": self.status,
            "revoked_reason": self.revoked_reason,
        }


def load_ca_bundle(path: str | Path) -> list[x509.Certificate]:
    """The CA certificates partner certificates must chain to (GATEWAY_SMIME_CA_BUNDLE)."""
    try:
        return x509.load_pem_x509_certificates(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"GATEWAY_SMIME_CA_BUNDLE: {type(exc).__name__}") from None


def check_certificate(
    partner_id: str,
    pem: bytes,
    *,
    now: datetime,
    trusted: Sequence[x509.Certificate] = (),
) -> PartnerCertificate:
    """Parse and check a partner's PEM certificate (the first in the file; the rest are taken
    as intermediates for the chain check)."""
    if b"PRIVATE KEY" in pem:
        raise PartnerCertError("a private key was given where a certificate is expected")
    try:
        leaf, *intermediates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise PartnerCertError("not a PEM certificate") from None
    key = leaf.public_key()
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_RSA_BITS:
        raise PartnerCertError(f"S/MIME needs an RSA key of at least {MIN_RSA_BITS} bits")
    not_before, not_after = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if now >= not_after:
        raise PartnerCertError("the certificate has expired", code="partner_cert_expired")
    if now < not_before:
        raise PartnerCertError("the certificate is not valid yet", code="partner_cert_expired")
    _check_usage(leaf)
    if trusted:
        _check_chain(leaf, intermediates, trusted, now)
    return PartnerCertificate(
        partner_id=partner_id,
        fingerprint=leaf.fingerprint(hashes.SHA256()).hex(),
        subject=leaf.subject.rfc4514_string()[:300],
        emails=_emails(leaf),
        not_before=not_before,
        not_after=not_after,
        pem=leaf.public_bytes(serialization.Encoding.PEM).decode("ascii"),
    )


def _check_usage(leaf: x509.Certificate) -> None:
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        pass
    else:
        if not usage.key_encipherment:
            raise PartnerCertError(
                "key usage does not allow key encipherment", code="partner_cert_key_usage"
            )
    try:
        extended = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    allowed = {ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
    if not allowed & set(extended):
        raise PartnerCertError(
            "extended key usage does not allow email protection", code="partner_cert_key_usage"
        )


def _check_chain(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    trusted: Sequence[x509.Certificate],
    now: datetime,
) -> None:
    # Usage is checked above for S/MIME; the web PKI's end-entity rules (clientAuth) do not apply.
    verifier = (
        PolicyBuilder()
        .store(Store(list(trusted)))
        .time(now.astimezone(UTC).replace(tzinfo=None))
        .extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ExtensionPolicy.permit_all()
        )
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, intermediates)
    except VerificationError:
        raise PartnerCertError(
            "the certificate does not chain to the configured CA bundle",
            code="partner_cert_untrusted",
        ) from None


def _emails(leaf: x509.Certificate) -> tuple[str, ...]:
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(names.get_values_for_type(x509.RFC822Name))


def certificate_for(
    certs: Iterable[PartnerCertificate], now: datetime
) -> tuple[PartnerCertificate | None, str | None]:
    """The certificate to encrypt to now (the one valid longest), or why there is none.

    (None, None): the partner never registered one, so it receives the TLS baseline.
    (None, code): it did, but none is usable (revoked or expired): never fall back to the
    baseline for a partner that asked for S/MIME.
    """
    registered = list(certs)
    usable = [c for c in registered if c.usable_at(now)]
    if usable:
        return max(usable, key=lambda c: (c.not_after, c.fingerprint)), None
    if not registered:
        return None, None
    if all(c.status == "revoked" for c in registered):
        return None, PARTNER_CERT_REVOKED
    return None, PARTNER_CERT_MISSING


def to_stored(cert: PartnerCertificate) -> StoredPartnerCert:
    """The row for a checked certificate."""
    return StoredPartnerCert(
        partner_id=cert.partner_id,
        fingerprint=cert.fingerprint,
        subject=cert.subject,
        emails=cert.emails,
        pem=cert.pem,
        not_before=cert.not_before,
        not_after=cert.not_after,
        status=cert.status,
        revoked_reason=cert.revoked_reason,
        revoked_at=cert.revoked_at,
    )


def from_stored(row: StoredPartnerCert) -> PartnerCertificate:
    """The domain certificate of a stored row."""
    return PartnerCertificate(
        partner_id=row.partner_id,
        fingerprint=row.fingerprint,
        subject=row.subject,
        emails=row.emails,
        not_before=row.not_before,
        not_after=row.not_after,
        pem=row.pem,
        status="revoked" if row.status == "revoked" else "active",
        revoked_reason=row.revoked_reason,
        revoked_at=row.revoked_at,
    )
