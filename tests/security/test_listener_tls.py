"""`gateway serve` over TLS: 1.2 or later only, client certificates from the internal CA map to
clients (instead of a bearer token), and bearer tokens can expire."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.gateway_support import lac_submission
from tests.integration.test_webhook_tls import _issue, _write
from tests.service_process import BIN, ServiceProcess, seeded_environment

pytestmark = pytest.mark.timeout(240)


@dataclass
class Served:
    """A TLS gateway and what a test needs to call it."""

    service: ServiceProcess
    token: str
    ca: Path
    client: Path
    stranger: Path
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.service.port}"


def _context(served: Served, cert: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(served.ca))
    if cert is not None:
        context.load_cert_chain(cert)
    return context


def _post(served: Served, *, token: str | None = None, cert: Path | None = None) -> int:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(  # noqa: S310 - loopback
        served.url + "/v1/disclosures", data=json.dumps(lac_submission()).encode(), headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10, context=_context(served, cert)) as resp:  # noqa: S310
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _admin(served: Served, *args: str) -> str:
    result = subprocess.run(
        [str(BIN / "gateway-admin"), *args],
        env={**os.environ, **served.env}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def _wait_healthy(served: Served, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(  # noqa: S310
                served.url + "/healthz", timeout=1, context=_context(served)
            ) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(served.service.log.read_text()[-2000:])


@pytest.fixture(scope="module", params=[1, 2], ids=["one-process", "gunicorn"])
def served(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Served]:
    """One service per process model for the module's tests (they leave it as they found it,
    except the certificate mapping, which the last test to need it removes)."""
    tmp_path = tmp_path_factory.mktemp("tls")
    ca_cert, ca_key = _issue("Gatehouse Internal CA", None, ca=True)
    server_cert, server_key = _issue("gatehouse.test", (ca_cert.subject, ca_key), server=True)
    client_cert, client_key = _issue("case-system", (ca_cert.subject, ca_key))
    rogue, rogue_key = _issue("Rogue CA", None, ca=True)
    stranger, stranger_key = _issue("case-system", (rogue.subject, rogue_key))
    ca = _write(tmp_path / "ca.pem", ca_cert, None)
    env, token = seeded_environment(
        tmp_path,
        GATEWAY_TLS_CERT=str(_write(tmp_path / "server.pem", server_cert, server_key)),
        GATEWAY_TLS_CLIENT_CA=str(ca),
        GATEWAY_MESH_MAILBOX="X26ABC1",  # the LAC health partner receives by MESH
    )
    service = ServiceProcess(env, role="api", processes=request.param, log=tmp_path / "g.log")
    running = Served(
        service,
        token,
        ca,
        _write(tmp_path / "client.pem", client_cert, client_key),
        _write(tmp_path / "stranger.pem", stranger, stranger_key),
        env,
    )
    _admin(running, "clients", "set-cert", "case-system", "--cert", str(running.client))
    handle = service.log.open("ab")
    command = ["serve", "--role", "api", "--processes", str(request.param)]
    service.proc = subprocess.Popen(
        [str(BIN / "gateway"), *command], env=service.env, stdout=handle, stderr=subprocess.STDOUT
    )
    handle.close()
    try:
        _wait_healthy(running)
        yield running
    finally:
        assert service.stop() == 0


def test_only_tls_1_2_or_later_with_forward_secret_suites(served: Served) -> None:
    old = _context(served)
    with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, OSError)):
        urllib.request.urlopen(served.url + "/healthz", timeout=5, context=old)  # noqa: S310
    tls12 = _context(served)
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection(("127.0.0.1", served.service.port), timeout=5) as raw,
        tls12.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        name, version, _bits = sock.cipher()  # type: ignore[misc]
    assert version == "TLSv1.2"
    assert name.startswith("ECDHE-")
    assert "GCM" in name or "CHACHA20" in name
    with pytest.raises(ConnectionError):  # and nothing answers in plain HTTP
        urllib.request.urlopen(  # noqa: S310
            served.url.replace("https", "http") + "/healthz", timeout=5
        )


def test_a_registered_client_certificate_replaces_the_bearer_token(served: Served) -> None:
    assert _post(served, cert=served.client) == 202
    assert _post(served) == 401  # no certificate, no token
    assert _post(served, token=served.token) == 202  # a token still works without one
    with pytest.raises((ssl.SSLError, OSError)):  # a certificate from another CA: no handshake
        _post(served, cert=served.stranger)
    _admin(served, "clients", "set-cert", "case-system")  # the mapping removed
    deadline = time.monotonic() + 10  # live within the policy refresh interval
    while _post(served, cert=served.client) != 401:
        assert time.monotonic() < deadline


def test_a_bearer_token_expires(served: Served) -> None:
    out = _admin(
        served, "clients", "add", "short-lived", "--agreements", "KM-NHS-LAC-001",
        "--expires", "PT4S", "--json",
    )  # fmt: skip
    token = json.loads(out)["token"]
    issued = time.monotonic()
    assert _post(served, token=token) == 202
    listed = json.loads(_admin(served, "clients", "list", "--json"))
    assert [c["token_expires_at"] is not None for c in listed if c["name"] == "short-lived"] == [
        True
    ]
    time.sleep(max(0.0, 4.5 - (time.monotonic() - issued)))
    assert _post(served, token=token) == 401
    rotated = json.loads(
        _admin(served, "clients", "rotate", "short-lived", "--expires", "P90D", "--json")
    )["token"]
    deadline = time.monotonic() + 10
    while _post(served, token=rotated) != 202:
        assert time.monotonic() < deadline
