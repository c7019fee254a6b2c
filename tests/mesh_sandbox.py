"""Run NHS England's mesh-sandbox in a subprocess, over plain HTTP or mutual TLS, for tests.

The sandbox is the real FastAPI server from PyPI (`mesh-sandbox`), started with uvicorn on a
free loopback port with full token checks, so nothing MESH-side is mocked. Mutual TLS uses a
throw-away CA, server and client certificate made here with `cryptography`.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from adapters.mesh_config import MeshConfig
from gateway.application.channel import Envelope
from tests.pki_support import ca_certificate, common_name

SHARED_KEY = "gatehouse-test-shared-key"
PASSWORD = "password"
SENDER = "X26ABC1"
RECIPIENT = "X26ABC2"
OTHER = "X26ABC3"
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class SandboxPki:
    """File paths of a test CA and the server and client certificates it issued."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def make_test_pki(directory: Path, *, client_name: str = SENDER) -> SandboxPki:
    """Make a CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = ca_certificate(
        ca_key,
        "Gatehouse Test CA",
        not_before=now - dt.timedelta(minutes=5),
        not_after=now + dt.timedelta(days=1),
    )

    def issue(subject: str, usage: x509.ObjectIdentifier, san: list[x509.GeneralName]) -> Any:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(common_name(subject))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
            )
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return key, builder.sign(ca_key, hashes.SHA256())

    server_key, server_cert = issue(
        "localhost",
        ExtendedKeyUsageOID.SERVER_AUTH,
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client_key, client_cert = issue(client_name, ExtendedKeyUsageOID.CLIENT_AUTH, [])
    pki = SandboxPki(
        ca_cert=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )
    pem = serialization.Encoding.PEM
    pki.ca_cert.write_bytes(ca_cert.public_bytes(pem))
    pki.server_cert.write_bytes(server_cert.public_bytes(pem))
    pki.client_cert.write_bytes(client_cert.public_bytes(pem))
    _write_key(server_key, pki.server_key)
    _write_key(client_key, pki.client_key)
    return pki


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MeshSandbox:
    """One mesh-sandbox process: start, wait until it answers, stop, restart on the same port."""

    def __init__(
        self,
        workdir: Path,
        *,
        pki: SandboxPki | None = None,
        store_mode: str = "memory",
        shared_key: str = SHARED_KEY,
    ) -> None:
        self.workdir = workdir
        self.pki = pki
        self.store_mode = store_mode
        self.shared_key = shared_key
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path = workdir / "mesh-sandbox.log"
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        """Base URL of the sandbox (without /messageexchange)."""
        scheme = "https" if self.pki else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client TLS context trusting the test CA and presenting the client certificate."""
        if self.pki is None:
            return None
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        context.load_cert_chain(str(self.pki.client_cert), str(self.pki.client_key))
        return context

    def _command(self) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "mesh_sandbox.api:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        if self.pki is not None:
            command += [
                "--ssl-keyfile",
                str(self.pki.server_key),
                "--ssl-certfile",
                str(self.pki.server_cert),
                "--ssl-ca-certs",
                str(self.pki.ca_cert),
                "--ssl-cert-reqs",
                str(int(ssl.CERT_REQUIRED)),
            ]
        return command

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            STORE_MODE=self.store_mode,
            AUTH_MODE="full",
            SHARED_KEY=self.shared_key,
            MAILBOXES_DATA_DIR=str(self.workdir / "mailboxes"),
            ENV="gatehouse-test",
        )
        return env

    def start(self) -> None:
        """Start the process and return once it answers its ping endpoint."""
        if self.running:
            return
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self._command(),
                env=self._environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        self._wait_ready()

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._process is not None and self._process.poll() is None

    def _ping(self) -> bool:
        # Our own loopback http(s) URL, never user input.
        request = urllib.request.Request(f"{self.url}/messageexchange/_ping")  # noqa: S310
        try:
            with urllib.request.urlopen(  # noqa: S310
                request, timeout=2, context=self.ssl_context()
            ) as reply:
                return bool(reply.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"mesh-sandbox exited early:\n{self.log_tail()}")
            if self._ping():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mesh-sandbox not ready after {START_TIMEOUT}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        """The end of the sandbox's own log, for failure messages."""
        if not self._log_path.exists():
            return ""
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the process (TERM, then KILL after a deadline)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    async def _admin(self, method: str, path: str, json: Any = None) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method,
                f"{self.url}/messageexchange/admin{path}",
                json=json,
                ssl=self.ssl_context() or True,
            ) as reply,
        ):
            reply.raise_for_status()
            if reply.content_type == "application/json":
                return await reply.json()
            return None

    async def reset(self, mailbox: str | None = None) -> None:
        """Empty every mailbox (or one) through the sandbox's test-only admin endpoint."""
        await self._admin("DELETE", f"/reset/{mailbox}" if mailbox else "/reset")

    async def inject_report(
        self,
        *,
        mailbox: str,
        linked_message_id: str,
        workflow_id: str,
        local_id: str | None = None,
        status: str = "undeliverable",
        code: str = "14",
        description: str = "Message not collected by recipient",
    ) -> str:
        """Put a REPORT message about linked_message_id into mailbox; returns the report's id."""
        reply = await self._admin(
            "POST",
            "/report",
            json={
                "mailbox_id": mailbox,
                "code": code,
                "description": description,
                "workflow_id": workflow_id,
                "local_id": local_id,
                "status": status,
                "linked_message_id": linked_message_id,
            },
        )
        return str(reply["message_id"])

    async def force_event(
        self, message_id: str, *, status: str, code: str | None = None, description: str = ""
    ) -> None:
        """Append a status event (e.g. error) to a message, as MESH would on a failure."""
        await self._admin(
            "POST",
            f"/message/{message_id}/event",
            json={"status": status, "code": code, "event": "TRANSFER", "description": description},
        )


@contextmanager
def running_sandbox(
    workdir: Path, *, tls: bool = False, store_mode: str = "memory"
) -> Iterator[MeshSandbox]:
    """A started sandbox (with its own test PKI when tls=True), stopped on exit."""
    pki = make_test_pki(workdir / "pki") if tls else None
    sandbox = MeshSandbox(workdir, pki=pki, store_mode=store_mode)
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def partner_client(sandbox: MeshSandbox, mailbox: str = RECIPIENT) -> Any:
    """NHS England's own `mesh_client.MeshClient` logged in as the partner mailbox."""
    from mesh_client import MeshClient as NhsMeshClient

    cert = None
    verify: str | bool | None = None
    if sandbox.pki is not None:
        cert = (str(sandbox.pki.client_cert), str(sandbox.pki.client_key))
        # REQUESTS_CA_BUNDLE would override verify=False here; name the test CA instead.
        verify = str(sandbox.pki.ca_cert)
    return NhsMeshClient(
        sandbox.url,
        mailbox,
        PASSWORD,
        shared_key=sandbox.shared_key.encode(),
        cert=cert,
        verify=verify,
        max_retries=0,
    )


WORKFLOW = "GATEHOUSE_LAC_HEALTH"
RECEIPT_WORKFLOW = "GATEHOUSE_RECEIPT"


def fake_jwe(size: int) -> bytes:
    """Synthetic compact-JWE-shaped bytes (random, so no real data) of about `size` bytes."""
    part = base64.urlsafe_b64encode(os.urandom(size * 3 // 4)).rstrip(b"=")
    return b"eyJhbGciOiJFQ0RILUVTK0EyNTZLVyJ9..AAAA." + part + b".BBBB"


def envelope(body: bytes | None = None, *, attempt: int = 1) -> Envelope:
    """A sealed-envelope stand-in addressed to the NHS partner."""
    return Envelope(
        message_id=str(uuid.uuid4()),
        partner_id="medway-nhs-lac-nurses",
        body=body if body is not None else fake_jwe(4000),
        digest="not-checked-by-the-channel",
        attempt=attempt,
    )


def target(**extra: Any) -> dict[str, Any]:
    """The partner's MESH transport settings as an agreement would give them."""
    return {"mailbox": RECIPIENT, "workflow_id": WORKFLOW, **extra}


def receive_all(partner: Any) -> list[tuple[Any, bytes]]:
    """The partner's side: list, download, acknowledge (NHS England's client does it all)."""
    received = []
    for message_id in partner.list_messages():
        message = partner.retrieve_message(message_id)
        received.append((message, message.read()))
        message.acknowledge()
    return received


def gateway_config(sandbox: MeshSandbox, **overrides: Any) -> MeshConfig:
    """Gatehouse's MESH settings for mailbox X26ABC1 on this sandbox (with its TLS files)."""
    settings: dict[str, Any] = {
        "mailbox": SENDER,
        "password": PASSWORD,
        "shared_key": sandbox.shared_key,
        "base_url": sandbox.url,
        "allow_insecure_loopback": sandbox.pki is None,
        "receipt_workflow_id": RECEIPT_WORKFLOW,
    }
    if sandbox.pki is not None:
        settings.update(
            client_cert=sandbox.pki.client_cert,
            client_key=sandbox.pki.client_key,
            ca_bundle=sandbox.pki.ca_cert,
        )
    settings.update(overrides)
    return MeshConfig(**settings)
