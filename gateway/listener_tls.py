"""TLS for the HTTP listener: TLS 1.2 or later with forward-secret AEAD suites, and optional
client certificates from the internal systems' CA (an alternative to bearer tokens)."""

from __future__ import annotations

import ssl

from gateway.settings import Settings

# TLS 1.2 suites: ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 only. TLS 1.3's own
# suites are all of that kind and stay OpenSSL's defaults.
MODERN_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def server_tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The listener's SSLContext, or None when GATEWAY_TLS_CERT is not set (plain HTTP)."""
    if settings.tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(MODERN_CIPHERS)
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    if settings.tls_client_ca is not None:
        # Optional: a client without a certificate may still use a bearer token, but a
        # certificate that is presented must chain to this CA or the handshake fails.
        context.load_verify_locations(cafile=settings.tls_client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context
