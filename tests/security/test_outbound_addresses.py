"""The webhook channel never connects to a private, link-local or loopback address for an
https partner unless the partner's catalog entry allows it: checked on real sockets."""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from adapters.webhook import WebhookChannel
from gateway.application.channel import DeliveryOutcome, Envelope
from tests.service_process import free_port

ENVELOPE = Envelope("d-ssrf-1", "kmmh", b"eyJhbGciOi.synthetic.jwe", "digest")


class _Listener:
    """A loopback TCP port that counts the connections it is offered (and drops them)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.connections = 0
        self._sock = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def listener() -> Iterator[_Listener]:
    running = _Listener()
    yield running
    running.close()


@pytest.fixture
async def channel() -> AsyncIterator[WebhookChannel]:
    webhook = WebhookChannel(connect_timeout=2, total_timeout=5, allow_insecure_loopback=True)
    yield webhook
    await webhook.close()


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]", "169.254.169.254", "10.255.0.1"]
)
async def test_https_to_a_private_address_is_refused_without_connecting(
    channel: WebhookChannel, listener: _Listener, host: str
) -> None:
    result = await channel.deliver(ENVELOPE, {"endpoint": f"https://{host}:{listener.port}/in"})
    assert (result.outcome, result.reason) == (
        DeliveryOutcome.PERMANENT,
        "endpoint_address_refused",
    )
    assert listener.connections == 0


async def test_the_catalog_allowance_lets_a_private_partner_through(
    channel: WebhookChannel, listener: _Listener
) -> None:
    target = {"endpoint": f"https://localhost:{listener.port}/in", "allow_private_address": True}
    result = await channel.deliver(ENVELOPE, target)
    assert listener.connections >= 1  # it connected (and the TLS handshake failed, as it must)
    assert result.outcome is DeliveryOutcome.TRANSIENT


async def test_dot_localhost_is_not_loopback_for_plain_http(
    channel: WebhookChannel, listener: _Listener
) -> None:
    target = {"endpoint": f"http://partner.localhost:{listener.port}/in"}
    result = await channel.deliver(ENVELOPE, target)
    assert (result.outcome, result.reason) == (DeliveryOutcome.PERMANENT, "endpoint_not_https")
    assert listener.connections == 0
    # while plain http to loopback itself still works where the flag allows it
    plain = await channel.deliver(ENVELOPE, {"endpoint": f"http://127.0.0.1:{listener.port}/in"})
    assert listener.connections == 1
    assert plain.reason == "partner_unreachable"
