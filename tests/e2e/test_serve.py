"""`gateway serve` as an operator runs it: one clear line for a bad setting; SIGTERM is graceful."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.gateway_support import lac_submission
from tests.service_process import BIN, ServiceProcess, seeded_environment


@pytest.mark.parametrize(
    ("name", "value"), [("GATEWAY_PORT", "not-a-port"), ("GATEWAY_POLICY_REFRESH_SECONDS", "0")]
)
def test_bad_setting_is_one_line_naming_it(tmp_path: Path, name: str, value: str) -> None:
    result = subprocess.run(
        [str(BIN / "gateway"), "serve"], env={**os.environ, name: value},
        capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert name in lines[0]
    assert "Traceback" not in result.stderr


def test_sigterm_lets_in_flight_requests_finish(tmp_path: Path) -> None:
    env, token = seeded_environment(tmp_path)
    service = ServiceProcess(env, role="api", log=tmp_path / "gateway.log").start()
    # A big record takes a while to minimise and seal: SIGTERM lands while it is in flight.
    submission = lac_submission()
    submission["record"]["case_notes"] = [{"text": "x" * 1000} for _ in range(8000)]
    body = json.dumps(submission).encode()
    with socket.create_connection(("127.0.0.1", service.port), timeout=30) as sock:
        sock.sendall(
            b"POST /v1/disclosures HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n".encode()
            + b"Connection: close\r\n\r\n"
            + body
        )
        time.sleep(0.01)  # the body is in; minimising and sealing 8 MB take ~50 ms
        assert service.proc is not None
        service.proc.send_signal(signal.SIGTERM)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 202"), answer[:200]
    assert service.proc.wait(timeout=30) == 0
    events = [
        json.loads(line) for line in service.log.read_text().splitlines() if line.startswith("{")
    ]
    order = [e["event"] if e["event"] == "stopping" else e.get("path") for e in events]
    # SIGTERM landed while the disclosure was being processed, and it still got its 202.
    assert order.index("stopping") < order.index("/v1/disclosures"), order
    with pytest.raises(ConnectionRefusedError):  # and it takes no new connections
        socket.create_connection(("127.0.0.1", service.port), timeout=2).close()
