"""The MESH channel over mutual TLS: the sandbox demands a client certificate from our test CA."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from adapters.mesh import MeshChannel
from adapters.mesh_inbox import MeshInboxPoller
from gateway.application.channel import DeliveryOutcome
from gateway.application.inbound import Dispatched, MeshEvent, TransportAcknowledged
from tests.mesh_sandbox import (
    RECEIPT_WORKFLOW,
    SENDER,
    MeshSandbox,
    envelope,
    gateway_config,
    make_test_pki,
    partner_client,
    receive_all,
    running_sandbox,
    target,
)

pytestmark = pytest.mark.mesh


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSandbox]:
    with running_sandbox(tmp_path_factory.mktemp("mesh-tls"), tls=True) as running:
        yield running


@pytest.fixture(autouse=True)
async def clean_mailboxes(sandbox: MeshSandbox) -> None:
    await sandbox.reset()


@pytest.fixture
async def channel(sandbox: MeshSandbox) -> AsyncIterator[MeshChannel]:
    channel = MeshChannel(gateway_config(sandbox))
    yield channel
    await channel.close()


@pytest.fixture
def partner(sandbox: MeshSandbox) -> Iterator[Any]:
    client = partner_client(sandbox)
    yield client
    client.close()


async def test_happy_path_over_mutual_tls(channel: MeshChannel, partner: Any) -> None:
    assert channel.config.base_url.startswith("https://")
    await channel.client.handshake()
    sealed = envelope()

    result = await channel.deliver(sealed, target())

    assert result.outcome is DeliveryOutcome.DISPATCHED
    mesh_id = result.detail["mesh_message_id"]
    [(message, body)] = receive_all(partner)
    assert body == sealed.body
    assert message.local_id == sealed.message_id
    events: list[MeshEvent] = []

    async def record(event: MeshEvent) -> None:
        events.append(event)

    poller = MeshInboxPoller(channel.client)
    await poller.check_dispatched([Dispatched(mesh_id, sealed.message_id)], record)
    partner.send_message(SENDER, b"signed-receipt", workflow_id=RECEIPT_WORKFLOW)
    await poller.poll_inbox(record)
    assert events[0] == TransportAcknowledged(mesh_id, sealed.message_id)
    assert [type(e).__name__ for e in events] == ["TransportAcknowledged", "ReceiptArrived"]


async def test_without_a_client_certificate_the_attempt_is_transient(
    sandbox: MeshSandbox, partner: Any
) -> None:
    assert sandbox.pki is not None
    channel = MeshChannel(gateway_config(sandbox, client_cert=None, client_key=None))
    try:
        result = await channel.deliver(envelope(), target())
    finally:
        await channel.close()
    assert result.outcome is DeliveryOutcome.TRANSIENT
    # Under TLS 1.3 the server's refusal arrives as a connection reset after the handshake.
    assert result.reason == "mesh_unreachable"
    assert partner.list_messages() == []


async def test_a_server_from_an_unknown_ca_is_refused(
    sandbox: MeshSandbox, tmp_path: Any, partner: Any
) -> None:
    stranger = make_test_pki(tmp_path / "other-ca")
    channel = MeshChannel(gateway_config(sandbox, ca_bundle=stranger.ca_cert))
    try:
        result = await channel.deliver(envelope(), target())
    finally:
        await channel.close()
    assert result.outcome is DeliveryOutcome.TRANSIENT
    assert result.reason == "mesh_tls_failed"
    assert partner.list_messages() == []
