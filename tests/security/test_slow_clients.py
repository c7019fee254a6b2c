"""Against a real `gateway serve`: a body sent slowly is cut off at the deadline, one client
cannot hold more than its share of requests in flight, and unauthenticated receipts are
rate-limited per source address."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service_process import ServiceProcess, seeded_environment

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[ServiceProcess, str]]:
    env, token = seeded_environment(
        tmp_path,
        GATEWAY_BODY_TIMEOUT="1.5",
        GATEWAY_CLIENT_CONCURRENCY="3",
        GATEWAY_RECEIPT_RATE="0.2",
        GATEWAY_RECEIPT_BURST="10",
    )
    running = ServiceProcess(env, role="api", log=tmp_path / "gateway.log").start(60)
    try:
        yield running, token
    finally:
        assert running.stop() == 0


def _slow_start(port: int, path: str, headers: str, length: int = 1000) -> socket.socket:
    """Send the head and the first byte of a body that never comes in full."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=15)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {length}\r\n\r\n{{".encode()
    )
    return sock


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_slow_bodies_are_cut_off_at_the_deadline(service: tuple[ServiceProcess, str]) -> None:
    running, token = service
    auth = f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
    started = time.monotonic()
    sockets = [_slow_start(running.port, "/v1/disclosures", auth) for _ in range(3)]
    sockets += [
        _slow_start(running.port, "/v1/receipts", "Content-Type: application/jose\r\n")
        for _ in range(3)
    ]
    for sock in sockets:  # trickle a byte now and then: never idle, never finished
        sock.sendall(b" ")
    answers = []
    for sock in sockets:
        with sock:
            answers.append(_answer(sock))  # returns only once the server closes
    elapsed = time.monotonic() - started
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), [a[:40] for a in answers]
    assert all(b'"code": "body_timeout"' in a for a in answers)
    assert all(b"application/problem+json" in a for a in answers)
    assert elapsed < 10, elapsed  # 1.5 s deadline, not the 40 s of an unlimited server


def test_one_client_holds_at_most_its_share_in_flight(
    service: tuple[ServiceProcess, str],
) -> None:
    running, token = service
    auth = f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
    held = [_slow_start(running.port, "/v1/disclosures", auth) for _ in range(3)]
    time.sleep(0.3)  # the three are inside the handler, waiting for their bodies
    with _slow_start(running.port, "/v1/disclosures", auth) as fourth:
        fourth.settimeout(1.0)  # refused at once, long before the body deadline
        head = fourth.recv(65536)
    assert head.startswith(b"HTTP/1.1 429 "), head[:200]
    assert b"Retry-After: 1" in head
    assert b'"code": "too_many_requests_in_flight"' in head
    for sock in held:
        sock.close()


def test_receipts_are_rate_limited_per_address(service: tuple[ServiceProcess, str]) -> None:
    running, _token = service
    statuses: list[int] = []
    last = b""
    with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
        for _ in range(15):
            body = b"not.a.receipt"
            sock.sendall(
                b"POST /v1/receipts HTTP/1.1\r\nHost: x\r\nContent-Type: application/jose\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            head, _, rest = sock.recv(65536).partition(b"\r\n\r\n")
            statuses.append(int(head.split(b" ")[1]))
            last = head + b"\r\n\r\n" + rest
    assert 429 not in statuses[:10], statuses  # the burst
    assert statuses[-5:] == [429] * 5, statuses
    head, _, body = last.partition(b"\r\n\r\n")
    # The moving window is burst / rate = 50 s: the oldest receipt leaves it within that.
    assert 1 <= int(head.split(b"Retry-After: ")[1].split(b"\r\n")[0]) <= 50
    assert b"application/problem+json" in head
    assert json.loads(body)["code"] == "rate_limited"
