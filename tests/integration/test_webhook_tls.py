"""The webhook channel over real TLS: a test CA, a partner server, mutual TLS per partner."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from adapters.webhook import WebhookChannel, WebhookTarget
from gateway.application.channel import DeliveryOutcome, Envelope

RECEIPT = b"eyJhbGciOiJFUzI1NiJ9.eyJzdGF0dXMiOiJyZWNlaXZlZCJ9.c2ln"
ENVELOPE = Envelope("d-tls-1", "kent-police", b"eyJhbGciOi.synthetic.jwe", "digest")
ServerFactory = Callable[..., Awaitable[TestServer]]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(
    subject: str,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_name, issuer_key = issuer or (_name(subject), key)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256()), key


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | None) -> Path:
    pem = cert.public_bytes(serialization.Encoding.PEM)
    if key is not None:
        pem += key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    path.write_bytes(pem)
    return path


@dataclass
class Pki:
    """Files of a throwaway PKI: the CA, the partner's server cert, the council's client cert."""

    ca: Path
    server: Path
    client: Path
    stranger: Path  # a client certificate from a CA the partner does not trust


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca_cert, ca_key = _issue("Gatehouse Test CA", None, ca=True)
    server_cert, server_key = _issue("partner.test", (ca_cert.subject, ca_key), server=True)
    client_cert, client_key = _issue("medway-council", (ca_cert.subject, ca_key))
    rogue_ca, rogue_key = _issue("Rogue CA", None, ca=True)
    stranger, stranger_key = _issue("medway-council", (rogue_ca.subject, rogue_key))
    return Pki(
        ca=_write(folder / "ca.pem", ca_cert, None),
        server=_write(folder / "server.pem", server_cert, server_key),
        client=_write(folder / "client.pem", client_cert, client_key),
        stranger=_write(folder / "stranger.pem", stranger, stranger_key),
    )


@pytest.fixture
async def partner_url(pki: Pki, aiohttp_server: ServerFactory) -> str:
    """An HTTPS partner that demands a client certificate from our CA and names it back."""

    async def receive(request: web.Request) -> web.Response:
        assert request.transport is not None
        peer = request.transport.get_extra_info("peercert")
        subject = dict(item[0] for item in peer["subject"])
        if subject.get("commonName") != "medway-council":
            return web.Response(status=403)
        await request.read()
        return web.Response(body=RECEIPT, content_type="application/jose")

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    context.load_cert_chain(pki.server)
    context.verify_mode = ssl.CERT_REQUIRED
    app = web.Application()
    app.router.add_post("/inbox", receive)
    server = await aiohttp_server(app, ssl=context)
    return f"https://127.0.0.1:{server.port}/inbox"


def _target(url: str, **settings: str) -> dict[str, object]:
    """The partner on loopback is on a private address: its catalog entry allows that."""
    return {"endpoint": url, "allow_private_address": True, **settings}


@pytest.fixture
async def channel() -> AsyncIterator[WebhookChannel]:
    webhook = WebhookChannel(total_timeout=5)
    yield webhook
    await webhook.close()


async def test_mutual_tls_with_the_partners_ca_and_our_client_certificate(
    pki: Pki, partner_url: str, channel: WebhookChannel
) -> None:
    target = _target(partner_url, ca_bundle=str(pki.ca), client_cert=str(pki.client))
    result = await channel.deliver(ENVELOPE, target)
    assert (result.outcome, result.receipt) == (DeliveryOutcome.RECEIPTED, RECEIPT)


async def test_one_tls_context_per_partner_configuration(
    pki: Pki, partner_url: str, channel: WebhookChannel
) -> None:
    target = _target(partner_url, ca_bundle=str(pki.ca), client_cert=str(pki.client))
    first = await channel.deliver(ENVELOPE, target)
    second = await channel.deliver(ENVELOPE, dict(target))
    assert first.outcome is second.outcome is DeliveryOutcome.RECEIPTED
    parsed = {"endpoint": partner_url, "ca_bundle": str(pki.ca)}
    plain = WebhookTarget.from_mapping(parsed)
    mutual = WebhookTarget.from_mapping(target)
    assert isinstance(plain, WebhookTarget)
    assert isinstance(mutual, WebhookTarget)
    assert channel.tls_context(mutual) is channel.tls_context(mutual)
    assert channel.tls_context(plain) is not channel.tls_context(mutual)


async def test_an_untrusted_partner_certificate_is_a_transient_tls_failure(
    partner_url: str, channel: WebhookChannel
) -> None:
    result = await channel.deliver(ENVELOPE, _target(partner_url))  # system CAs only
    assert (result.outcome, result.reason) == (DeliveryOutcome.TRANSIENT, "partner_tls_failed")


@pytest.mark.parametrize("client", [None, "stranger"])
async def test_the_partner_refusing_our_certificate_is_transient(
    pki: Pki, partner_url: str, channel: WebhookChannel, client: str | None
) -> None:
    target = _target(partner_url, ca_bundle=str(pki.ca))
    if client:
        target["client_cert"] = str(getattr(pki, client))
    result = await channel.deliver(ENVELOPE, target)
    # TLS 1.3 checks the client certificate after the handshake: we see a reset connection.
    assert result.outcome is DeliveryOutcome.TRANSIENT
    assert result.reason in {"partner_tls_failed", "partner_unreachable"}
    assert result.receipt is None
