"""MESH outages: retries are transient, and never make a second message (tracking by local id).

The sandbox runs in file mode here so that what it accepted survives its own restart, as the
real MESH would.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from adapters.mesh import MeshChannel
from adapters.mesh_chunking import MIB, plan_upload
from gateway.application.channel import DeliveryOutcome
from tests.mesh_sandbox import (
    RECIPIENT,
    WORKFLOW,
    MeshSandbox,
    envelope,
    gateway_config,
    partner_client,
    receive_all,
    running_sandbox,
    target,
)

pytestmark = pytest.mark.mesh
CHUNK = int(5.5 * MIB)


@pytest.fixture
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSandbox]:
    with running_sandbox(tmp_path_factory.mktemp("mesh-file"), store_mode="file") as running:
        yield running


@pytest.fixture
async def channel(sandbox: MeshSandbox) -> AsyncIterator[MeshChannel]:
    config = gateway_config(sandbox, chunk_size=CHUNK, connect_timeout=2, read_timeout=5)
    channel = MeshChannel(config)
    yield channel
    await channel.close()


@pytest.fixture
def partner(sandbox: MeshSandbox) -> Iterator[Any]:
    client = partner_client(sandbox)
    yield client
    client.close()


async def test_sandbox_down_is_transient_and_the_retry_sends_once(
    sandbox: MeshSandbox, channel: MeshChannel, partner: Any
) -> None:
    sealed = envelope()
    sandbox.stop()

    down = await channel.deliver(sealed, target())

    assert down.outcome is DeliveryOutcome.TRANSIENT
    assert down.reason == "mesh_unreachable"
    sandbox.start()
    retried = await channel.deliver(sealed, target())
    assert retried.outcome is DeliveryOutcome.DISPATCHED
    assert "already_sent" not in retried.detail
    [(_, body)] = receive_all(partner)
    assert body == sealed.body


async def test_retry_after_an_outage_finds_the_accepted_message_instead_of_resending(
    sandbox: MeshSandbox, channel: MeshChannel, partner: Any
) -> None:
    # The first attempt reached MESH but its outcome was lost (crash, timeout, outage).
    sealed = envelope()
    first = await channel.deliver(sealed, target())
    sandbox.stop()
    during = await channel.deliver(sealed, target())
    sandbox.start()

    after = await channel.deliver(sealed, target())

    assert during.outcome is DeliveryOutcome.TRANSIENT
    assert after.outcome is DeliveryOutcome.DISPATCHED
    assert after.detail["already_sent"] is True
    assert after.detail["mesh_message_id"] == first.detail["mesh_message_id"]
    assert len(partner.list_messages()) == 1


async def test_an_interrupted_chunked_upload_is_resumed_not_duplicated(
    channel: MeshChannel, partner: Any
) -> None:
    sealed = envelope(os.urandom(12 * 1000 * 1000))
    plan = plan_upload(sealed.body, CHUNK, gzip_allowed=False)
    # Chunk 1 reached MESH, then the worker died: MESH holds the message as `uploading`.
    mesh_id = await channel.client.create(
        plan, recipient=RECIPIENT, workflow_id=WORKFLOW, local_id=sealed.message_id
    )
    assert (await channel.client.track(mesh_id)).status == "uploading"

    resumed = await channel.deliver(sealed, target())

    assert resumed.outcome is DeliveryOutcome.DISPATCHED
    assert resumed.detail == {"mesh_message_id": mesh_id, "resumed": True, "chunks": 3}
    [(message, body)] = receive_all(partner)
    assert message.id() == mesh_id
    assert body == sealed.body
