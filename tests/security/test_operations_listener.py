"""Operations endpoints live on their own loopback listener; no response names aiohttp's
version; readiness is checked at most once a second however often it is probed."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from gateway.http.app import create_ops_app
from tests.gateway_support import build_harness, isolated_settings
from tests.security.support import log_lines
from tests.service_process import ServiceProcess, free_port, seeded_environment


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize("processes", [1, 2])
def test_operations_endpoints_only_on_the_loopback_ops_listener(
    tmp_path: Path, processes: int
) -> None:
    env, _token = seeded_environment(tmp_path)
    service = ServiceProcess(env, role="api", processes=processes, log=tmp_path / "g.log")
    service.start(60)
    try:
        for path in ("/metrics", "/readyz"):
            status, headers, _ = _get(service.url + path)
            assert status == 404, path
            assert "aiohttp" not in headers.get("Server", "")
            status, headers, body = _get(service.ops_url + path)
            assert status == 200, (path, body[:300])
            assert "aiohttp" not in headers.get("Server", "")
        assert _get(service.url + "/healthz")[0] == 200  # load balancers may still probe it
        assert b"gatehouse_http_requests_total" in _get(service.ops_url + "/metrics")[2]
        # Whatever the answer, no header names the server's software or version.
        for answer in (
            _raw(
                service.port,
                b"GET /v1/openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            ),
            _raw(service.port, b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
            _raw(service.port, b"BROKEN \x01 REQUEST\r\n\r\n"),
        ):
            head = answer.split(b"\r\n\r\n", 1)[0].lower()
            assert b"aiohttp" not in head, head
            assert b"python/" not in head, head
    finally:
        assert service.stop() == 0
    events = [json.loads(line) for line in log_lines(service.log) if line.startswith("{")]
    listening = [e for e in events if e["event"] == "ops_listening"]
    assert len(listening) == processes
    assert {e["host"] for e in listening} == {"127.0.0.1"}


class _CountingBroker:
    """A TCP port that counts connections and closes them (readiness sees it unreachable)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._listener.close()


async def test_readiness_is_checked_at_most_once_a_second(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    broker = _CountingBroker()
    harness = await build_harness(
        isolated_settings(tmp_path, broker_url=f"amqp://guest:guest@127.0.0.1:{broker.port}/")
    )
    try:
        ops = await aiohttp_client(create_ops_app(harness.gateway))
        answers = await asyncio.gather(*(ops.get("/readyz") for _ in range(20)))
        assert {a.status for a in answers} == {503}
        assert broker.connections == 1  # twenty probes, one broker connection
        await asyncio.sleep(1.1)
        assert (await ops.get("/readyz")).status == 503
        assert broker.connections == 2  # and checked again after a second
    finally:
        broker.close()
        await harness.gateway.close()
