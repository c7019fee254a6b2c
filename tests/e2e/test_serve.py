"""`gateway serve` as an operator runs it: one clear line for a bad setting; SIGTERM is graceful."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
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
    # An API process that takes MESH submissions is configured for MESH (it sends none).
    env, token = seeded_environment(tmp_path, GATEWAY_MESH_MAILBOX="X26ABC1")
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


def _children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def _until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


def _post(url: str, token: str) -> int:
    request = urllib.request.Request(  # noqa: S310 - loopback
        url + "/v1/disclosures",
        data=json.dumps(lac_submission()).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
        return int(resp.status)


def _queued_total(url: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:  # noqa: S310
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('gatehouse_disclosures_total{outcome="queued"')
    )


def test_several_api_processes_are_supervised_and_count_as_one(tmp_path: Path) -> None:
    # An API process that takes MESH submissions is configured for MESH (it sends none).
    env, token = seeded_environment(tmp_path, GATEWAY_MESH_MAILBOX="X26ABC1")
    service = ServiceProcess(env, role="api", processes=2, log=tmp_path / "gateway.log").start()
    assert service.proc is not None
    try:
        _until(lambda: len(_children(service.proc.pid)) == 2, "two API processes")  # type: ignore[union-attr]
        first = _children(service.proc.pid)
        assert [_post(service.url, token) for _ in range(10)] == [202] * 10
        os.kill(min(first), signal.SIGKILL)  # a crashed process is replaced
        _until(
            lambda: (
                len(_children(service.proc.pid)) == 2  # type: ignore[union-attr]
                and _children(service.proc.pid) != first
            ),  # type: ignore[union-attr]
            "a replacement process",
        )
        assert [_post(service.url, token) for _ in range(10)] == [202] * 10
        # Each new connection may land on either process; every scrape sums them all.
        assert {_queued_total(service.ops_url) for _ in range(10)} == {20}
        assert _queued_total(service.ops_url) == 20
    finally:
        assert service.stop() == 0


def test_several_delivery_processes_run_under_the_same_supervisor(tmp_path: Path) -> None:
    env, _token = seeded_environment(tmp_path)
    service = ServiceProcess(env, role="worker", processes=2, log=tmp_path / "gateway.log").start()
    assert service.proc is not None
    try:
        _until(lambda: service.log.read_text().count('"delivery_started"') == 2, "two engines")
        assert len(_children(service.proc.pid)) == 2
    finally:
        assert service.stop() == 0
    assert service.log.read_text().count('"delivery_stopped"') == 2


def test_delivery_processes_stop_cleanly_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    env, _token = seeded_environment(tmp_path, GATEWAY_LOG_FORMAT="json")
    service = ServiceProcess(env, role="worker", processes=2, log=tmp_path / "gateway.log").start()
    assert service.proc is not None
    try:
        _until(lambda: service.log.read_text().count('"delivery_started"') == 2, "two engines")
        orphans = _children(service.proc.pid)
        service.kill()  # kill -9 of the arbiter: no one will stop or restart its processes
        _until(
            lambda: not any(Path(f"/proc/{pid}").exists() for pid in orphans),
            "the orphaned delivery processes exit",
            timeout=20,
        )
    finally:
        for pid in orphans:
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
    text = service.log.read_text()
    lines = text.splitlines()
    assert all(line.startswith("{") and json.loads(line) for line in lines), text[-2000:]
    assert "Traceback" not in text
    gone = [json.loads(line) for line in lines if '"supervisor_gone"' in line]
    assert [event["level"] for event in gone] == ["warning", "warning"]  # one line each
    assert text.count('"delivery_stopped"') == 2  # and each closed its engine on the way out
