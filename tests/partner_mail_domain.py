"""A partner's mail domain on loopback: its DNS (MX, A, MTA-STS TXT), its MTA-STS policy host
over HTTPS, and certificates for its host names from a test CA.

The DNS server is dnslib's, answering from a zone the test edits; the policy host is an aiohttp
server with a certificate for `mta-sts.<domain>`. Everything listens on 127.0.0.0/8 only.
"""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from dnslib import QTYPE, RCODE, RR, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

from tests.mesh_sandbox import free_port
from tests.pki_support import ca_certificate, common_name


@dataclass
class DomainCa:
    """A CA that issues TLS server certificates for any names."""

    directory: Path
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def __post_init__(self) -> None:
        now = dt.datetime.now(dt.UTC)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.cert = ca_certificate(
            self.key,
            "Partner Domain Test CA",
            not_before=now - dt.timedelta(minutes=5),
            not_after=now + dt.timedelta(days=1),
        )
        self.bundle = self.directory / "ca.pem"
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def server_context(self, *names: str) -> ssl.SSLContext:
        """A server TLS context with a certificate for `names`."""
        now = dt.datetime.now(dt.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(common_name(names[0]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .sign(self.key, hashes.SHA256())
        )
        stem = self.directory / names[0]
        cert_path, key_path = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_path, key_path)
        return context


class Zone(BaseResolver):  # type: ignore[misc]  # dnslib is untyped
    """Answers from `records`: (name, type) -> rdata list; unknown names are NXDOMAIN."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[Any]] = {}

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        kind = QTYPE[request.q.qtype]
        if not any(known == name for known, _ in self.records):
            reply.header.rcode = RCODE.NXDOMAIN
        for rdata in self.records.get((name, kind), []):
            reply.add_answer(RR(request.q.qname, request.q.qtype, rdata=rdata, ttl=60))
        return reply


def start_dns(zone: Zone) -> tuple[DNSServer, int]:
    """A UDP DNS server on 127.0.0.1 answering from `zone`, in a thread."""
    port = free_port()
    quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", logf=_silent)
    server = DNSServer(zone, address="127.0.0.1", port=port, logger=quiet)
    server.start_thread()
    return server, port


def stop_dns(server: DNSServer) -> None:
    """Stop serving and close the socket."""
    server.stop()
    server.server.server_close()


def _silent(_line: str) -> None:
    """dnslib logs every query; the tests need none of it."""


@dataclass
class PolicyHost:
    """`https://mta-sts.<domain>/.well-known/mta-sts.txt`, serving `policy`; counts fetches."""

    policy: str = ""
    fetches: int = 0
    content_type: str = "text/plain"

    async def handle(self, request: web.Request) -> web.Response:
        self.fetches += 1
        return web.Response(body=self.policy.encode(), content_type=self.content_type)

    async def start(self, context: ssl.SSLContext) -> tuple[web.AppRunner, int]:
        app = web.Application()
        app.router.add_get("/.well-known/mta-sts.txt", self.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
        return runner, port
