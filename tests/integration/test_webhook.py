"""The webhook channel against a real aiohttp partner on loopback: every outcome and reason."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.retry_after import parse_retry_after
from adapters.webhook import SLICED_BODY, WebhookChannel, is_loopback, outcome_for_status
from gateway.application.channel import DeliveryOutcome, Envelope

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
RECEIPT = b"eyJhbGciOiJFUzI1NiJ9.eyJzdGF0dXMiOiJyZWNlaXZlZCJ9.c2ln"
ENVELOPE = Envelope("d-0001", "kmpt", b"eyJhbGciOi.synthetic.jwe.bytes.x", "digest", attempt=3)
ServerFactory = Callable[..., Awaitable[TestServer]]
STATUSES = {"accepted": 202, "ok": 200, "empty": 204, "busy": 429, "down": 503,
            "boom": 500, "refuse": 403, "gone": 410, "late": 408, "moved": 302}  # fmt: skip


class Partner:
    """A loopback partner whose answer depends on the path; it records what it received."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.hold = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.received.append(
            {"headers": dict(request.headers), "body": await request.read(), "peer": peer}
        )
        name = request.match_info["name"]
        if name == "receipt":
            return web.Response(body=RECEIPT + b"\n", content_type="application/jose")
        if name == "big-receipt":
            return web.Response(body=b"x" * 70_000, content_type="application/jose")
        if name == "json":
            return web.json_response({"ok": True})
        if name == "slow":
            await self.hold.wait()
        status = STATUSES[name]
        headers = {}
        if name == "busy":
            headers["Retry-After"] = "7"
        if name == "down":
            headers["Retry-After"] = format_datetime(datetime.now(UTC) + timedelta(hours=2), True)
        if name == "moved":
            headers["Location"] = "https://elsewhere.example/"
        return web.Response(status=status, headers=headers)


@pytest.fixture
async def partner(aiohttp_server: ServerFactory) -> AsyncIterator[tuple[Partner, str]]:
    sim = Partner()
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/{name}", sim.handle)
    server = await aiohttp_server(app)
    yield sim, f"http://127.0.0.1:{server.port}"
    sim.hold.set()


@pytest.fixture
async def channel() -> AsyncIterator[WebhookChannel]:
    webhook = WebhookChannel(allow_insecure_loopback=True, total_timeout=0.5, connect_timeout=0.5)
    yield webhook
    await webhook.close()


async def test_post_carries_the_envelope_and_its_headers(
    partner: tuple[Partner, str], channel: WebhookChannel
) -> None:
    sim, base = partner
    result = await channel.deliver(ENVELOPE, {"endpoint": f"{base}/receipt"})
    assert result.outcome is DeliveryOutcome.RECEIPTED
    assert result.receipt == RECEIPT
    sent = sim.received[0]
    assert sent["body"] == ENVELOPE.body
    assert sent["headers"]["Content-Type"] == "application/jose"
    assert sent["headers"]["X-Gatehouse-Message-Id"] == "d-0001"
    assert sent["headers"]["X-Gatehouse-Attempt"] == "3"


async def test_a_large_envelope_goes_whole_with_its_length_not_chunked(
    partner: tuple[Partner, str], channel: WebhookChannel
) -> None:
    sim, base = partner
    size = 3 * SLICED_BODY + 7  # slices, and a short last one
    body = (bytes(range(251)) * (size // 251 + 1))[:size]  # out of order would not compare
    result = await channel.deliver(replace(ENVELOPE, body=body), {"endpoint": f"{base}/receipt"})
    assert result.outcome is DeliveryOutcome.RECEIPTED
    sent = sim.received[0]
    assert sent["body"] == body
    assert sent["headers"]["Content-Length"] == str(size)
    assert "Transfer-Encoding" not in sent["headers"]


@pytest.mark.parametrize(
    ("path", "outcome", "reason", "retry_after"),
    [
        ("accepted", DeliveryOutcome.DISPATCHED, None, None),
        ("ok", DeliveryOutcome.DISPATCHED, None, None),
        ("empty", DeliveryOutcome.DISPATCHED, None, None),
        ("json", DeliveryOutcome.DISPATCHED, None, None),
        ("big-receipt", DeliveryOutcome.DISPATCHED, None, None),
        ("busy", DeliveryOutcome.TRANSIENT, "partner_throttled", 7.0),
        ("boom", DeliveryOutcome.TRANSIENT, "partner_server_error", None),
        ("late", DeliveryOutcome.TRANSIENT, "partner_timeout", None),
        ("refuse", DeliveryOutcome.PERMANENT, "partner_refused", None),
        ("gone", DeliveryOutcome.PERMANENT, "partner_refused", None),
        ("moved", DeliveryOutcome.PERMANENT, "partner_refused", None),
    ],
)
async def test_each_answer_maps_to_an_outcome(
    partner: tuple[Partner, str],
    channel: WebhookChannel,
    *,
    path: str,
    outcome: DeliveryOutcome,
    reason: str | None,
    retry_after: float | None,
) -> None:
    _sim, base = partner
    result = await channel.deliver(ENVELOPE, {"endpoint": f"{base}/{path}"})
    assert (result.outcome, result.reason, result.retry_after) == (outcome, reason, retry_after)
    assert result.receipt is None


async def test_503_with_an_http_date_retry_after(
    partner: tuple[Partner, str], channel: WebhookChannel
) -> None:
    _sim, base = partner
    result = await channel.deliver(ENVELOPE, {"endpoint": f"{base}/down"})
    assert (result.outcome, result.reason) == (DeliveryOutcome.TRANSIENT, "partner_server_error")
    assert result.detail["status"] == 503
    assert result.retry_after is not None
    assert 7000 < result.retry_after <= 7200


async def test_refused_status_is_in_the_detail(
    partner: tuple[Partner, str], channel: WebhookChannel
) -> None:
    _sim, base = partner
    result = await channel.deliver(ENVELOPE, {"endpoint": f"{base}/gone"})
    assert dict(result.detail) == {"status": 410}


async def test_a_partner_that_never_answers_times_out(
    partner: tuple[Partner, str], channel: WebhookChannel
) -> None:
    _sim, base = partner
    result = await channel.deliver(ENVELOPE, {"endpoint": f"{base}/slow", "total_timeout": 0.2})
    assert (result.outcome, result.reason) == (DeliveryOutcome.TRANSIENT, "partner_timeout")
    assert result.detail["phase"] == "response"


async def test_nothing_listening_is_unreachable(channel: WebhookChannel) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = await channel.deliver(ENVELOPE, {"endpoint": f"http://127.0.0.1:{port}/x"})
    assert (result.outcome, result.reason) == (DeliveryOutcome.TRANSIENT, "partner_unreachable")


async def test_connections_are_pooled(
    partner: tuple[Partner, str], channel: WebhookChannel
) -> None:
    sim, base = partner
    for _ in range(3):
        result = await channel.deliver(ENVELOPE, {"endpoint": f"{base}/accepted"})
        assert result.outcome is DeliveryOutcome.DISPATCHED
    assert len({r["peer"] for r in sim.received}) == 1  # one TCP connection for three POSTs


@pytest.mark.parametrize(
    ("endpoint", "allow"),
    [
        ("http://partner.example.nhs.uk/in", True),
        ("http://10.0.0.8/in", True),
        ("http://127.0.0.1:9/in", False),
    ],
)
async def test_plain_http_is_refused_unless_loopback_and_allowed(
    endpoint: str, *, allow: bool
) -> None:
    webhook = WebhookChannel(allow_insecure_loopback=allow)
    try:
        result = await webhook.deliver(ENVELOPE, {"endpoint": endpoint})
    finally:
        await webhook.close()
    assert (result.outcome, result.reason) == (DeliveryOutcome.PERMANENT, "endpoint_not_https")


@pytest.mark.parametrize(
    ("target", "setting"),
    [
        ({}, "endpoint"),
        ({"endpoint": "ftp://partner.example/in"}, "endpoint"),
        ({"endpoint": "https://partner.example/in", "total_timeout": -1}, "total_timeout"),
        ({"endpoint": "https://partner.example/in", "client_key": "k.pem"}, "client_cert"),
        ({"endpoint": "https://partner.example/in", "ca_bundle": "/no/such/ca.pem"}, "tls"),
    ],
)
async def test_bad_settings_are_a_permanent_misconfiguration(
    channel: WebhookChannel, target: dict[str, Any], setting: str
) -> None:
    result = await channel.deliver(ENVELOPE, target)
    assert (result.outcome, result.reason) == (DeliveryOutcome.PERMANENT, "channel_misconfigured")
    assert result.detail["setting"] == setting


def test_retry_after_forms() -> None:
    assert parse_retry_after("120", NOW) == 120.0
    assert parse_retry_after(format_datetime(NOW + timedelta(seconds=90), True), NOW) == 90.0
    assert parse_retry_after(format_datetime(NOW - timedelta(hours=1), True), NOW) == 0.0
    assert parse_retry_after("9999999", NOW) == 86400.0
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 413, 422, 301, 304])
def test_every_other_client_error_is_permanent(status: int) -> None:
    result = outcome_for_status(status, None, None)
    assert (result.outcome, result.reason) == (DeliveryOutcome.PERMANENT, "partner_refused")


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599])
def test_every_server_error_is_transient(status: int) -> None:
    assert outcome_for_status(status, None, 5.0).outcome is DeliveryOutcome.TRANSIENT


def test_loopback_hosts() -> None:
    assert all(is_loopback(h) for h in ["127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost"])
    assert not any(is_loopback(h) for h in ["10.0.0.1", "example.org", "", None, "localhost.org"])
