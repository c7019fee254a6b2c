"""The MESH channel against NHS England's real mesh-sandbox, the partner played by mesh-client."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from adapters.mesh import MeshChannel
from adapters.mesh_chunking import MIB
from adapters.mesh_client import MeshClient
from adapters.mesh_errors import MeshApiError
from adapters.mesh_inbox import MeshInboxPoller
from gateway.application.channel import DeliveryOutcome
from gateway.application.inbound import (
    DeliveryFailed,
    Dispatched,
    MeshEvent,
    ReceiptArrived,
    TransportAcknowledged,
)
from tests.mesh_sandbox import (
    OTHER,
    RECEIPT_WORKFLOW,
    RECIPIENT,
    SENDER,
    WORKFLOW,
    MeshSandbox,
    envelope,
    fake_jwe,
    free_port,
    gateway_config,
    partner_client,
    receive_all,
    running_sandbox,
    target,
)

pytestmark = pytest.mark.mesh


class Recorder:
    """A handler that keeps every event (and can be told to fail); `dispatched` is pending."""

    def __init__(self, *, fail: bool = False, dispatched: list[Dispatched] | None = None) -> None:
        self.events: list[MeshEvent] = []
        self.fail = fail
        self.dispatched = dispatched or []

    async def __call__(self, event: MeshEvent) -> None:
        if self.fail:
            raise RuntimeError("the gateway could not record it")
        self.events.append(event)

    async def pending(self) -> list[Dispatched]:
        return self.dispatched


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MeshSandbox]:
    with running_sandbox(tmp_path_factory.mktemp("mesh")) as running:
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


async def test_handshake_send_download_acknowledge_and_transport_receipt(
    channel: MeshChannel, partner: Any
) -> None:
    await channel.client.handshake()
    sealed = envelope()

    result = await channel.deliver(sealed, target())

    assert result.outcome is DeliveryOutcome.DISPATCHED
    mesh_id = result.detail["mesh_message_id"]
    [(message, body)] = receive_all(partner)
    assert body == sealed.body
    assert message.id() == mesh_id
    assert message.local_id == sealed.message_id
    assert message.workflow_id == WORKFLOW
    assert message.sender == SENDER
    tracking = await channel.client.track(mesh_id)
    assert tracking.status == "acknowledged"
    events = Recorder()
    poller = MeshInboxPoller(channel.client)
    await poller.check_dispatched([Dispatched(mesh_id, sealed.message_id)], events)
    assert events.events == [TransportAcknowledged(mesh_id, sealed.message_id)]


async def test_a_message_mesh_does_not_know_does_not_stop_the_others(
    channel: MeshChannel, partner: Any
) -> None:
    sealed = envelope()
    mesh_id = (await channel.deliver(sealed, target())).detail["mesh_message_id"]
    receive_all(partner)
    events = Recorder()
    summary = await MeshInboxPoller(channel.client).check_dispatched(
        [Dispatched("20200101000000000000_ABCDEF"), Dispatched(mesh_id, sealed.message_id)], events
    )
    assert events.events == [TransportAcknowledged(mesh_id, sealed.message_id)]
    assert summary.ignored == 1


async def test_pending_message_yields_no_event_until_acknowledged(channel: MeshChannel) -> None:
    result = await channel.deliver(envelope(), target())
    events = Recorder()
    summary = await MeshInboxPoller(channel.client).check_dispatched(
        [Dispatched(result.detail["mesh_message_id"])], events
    )
    assert events.events == []
    assert summary.events == 0


async def test_gzip_when_the_agreement_allows_it_arrives_identical(
    channel: MeshChannel, partner: Any
) -> None:
    sealed = envelope(fake_jwe(200_000))
    result = await channel.deliver(sealed, target(gzip=True))
    assert result.outcome is DeliveryOutcome.DISPATCHED
    assert result.detail["compressed"] is True
    [(_, body)] = receive_all(partner)
    assert body == sealed.body


async def test_partner_receipt_on_receipt_workflow_arrives_byte_identical(
    channel: MeshChannel, partner: Any
) -> None:
    sealed = envelope()
    await channel.deliver(sealed, target())
    receipt = b"eyJhbGciOiJFUzI1NiJ9.eyJtZXNzYWdlX2lkIjoiMSJ9.c2lnbmF0dXJl"
    partner.send_message(SENDER, receipt, workflow_id=RECEIPT_WORKFLOW, local_id=sealed.message_id)
    events = Recorder()
    poller = MeshInboxPoller(channel.client)

    summary = await poller.poll_inbox(events)

    [event] = events.events
    assert isinstance(event, ReceiptArrived)
    assert event.body == receipt
    assert event.local_id == sealed.message_id
    assert event.sender == RECIPIENT
    assert summary.acknowledged == 1
    assert await channel.client.list_inbox() == []


async def test_inbox_message_stays_when_the_handler_fails(
    channel: MeshChannel, partner: Any
) -> None:
    partner.send_message(SENDER, b"receipt", workflow_id=RECEIPT_WORKFLOW, local_id="x")
    poller = MeshInboxPoller(channel.client)

    failed = await poller.poll_inbox(Recorder(fail=True))
    assert failed.handler_failures == 1
    assert failed.acknowledged == 0
    assert len(await channel.client.list_inbox()) == 1

    events = Recorder()
    await poller.poll_inbox(events)
    assert [type(e) for e in events.events] == [ReceiptArrived]
    assert await channel.client.list_inbox() == []


async def test_someone_elses_traffic_is_left_in_the_inbox(
    channel: MeshChannel, partner: Any
) -> None:
    partner.send_message(SENDER, b"pathology results", workflow_id="PATH_RESULTS")
    poller = MeshInboxPoller(channel.client)
    events = Recorder()
    first = await poller.poll_inbox(events)
    second = await poller.poll_inbox(events)
    assert events.events == []
    assert (first.ignored, second.ignored) == (1, 1)
    assert len(await channel.client.list_inbox()) == 1


async def test_twelve_megabytes_cross_as_several_chunks(sandbox: MeshSandbox, partner: Any) -> None:
    channel = MeshChannel(gateway_config(sandbox, chunk_size=int(5.5 * MIB)))
    sealed = envelope(os.urandom(12 * 1000 * 1000))
    try:
        result = await channel.deliver(sealed, target(gzip=True))
    finally:
        await channel.close()
    assert result.outcome is DeliveryOutcome.DISPATCHED
    assert result.detail["chunks"] == 3
    [(message, body)] = receive_all(partner)
    assert message.mex_header("chunk-range") == "1:3"
    assert body == sealed.body


async def test_undelivered_report_becomes_delivery_failed(
    sandbox: MeshSandbox, channel: MeshChannel
) -> None:
    sealed = envelope()
    result = await channel.deliver(sealed, target())
    mesh_id = result.detail["mesh_message_id"]
    await sandbox.inject_report(
        mailbox=SENDER, linked_message_id=mesh_id, workflow_id=WORKFLOW, local_id=sealed.message_id
    )
    events = Recorder()

    summary = await MeshInboxPoller(channel.client).poll_inbox(events)

    [event] = events.events
    assert isinstance(event, DeliveryFailed)
    assert event.reason == "mesh_undelivered"
    assert event.status_code == "14"
    assert event.mesh_message_id == mesh_id
    assert event.local_id == sealed.message_id
    assert summary.acknowledged == 1
    assert await channel.client.list_inbox() == []


async def test_error_event_on_a_sent_message_becomes_delivery_failed(
    sandbox: MeshSandbox, channel: MeshChannel
) -> None:
    sealed = envelope()
    mesh_id = (await channel.deliver(sealed, target())).detail["mesh_message_id"]
    await sandbox.force_event(mesh_id, status="error", code="02", description="Data file missing")
    events = Recorder()

    await MeshInboxPoller(channel.client).check_dispatched(
        [Dispatched(mesh_id, sealed.message_id)], events
    )

    assert events.events == [
        DeliveryFailed(mesh_id, sealed.message_id, reason="mesh_delivery_error")
    ]


async def test_retry_of_a_sent_envelope_does_not_send_it_twice(
    channel: MeshChannel, partner: Any
) -> None:
    sealed = envelope()
    first = await channel.deliver(sealed, target())
    again = await channel.deliver(sealed, target())
    assert again.outcome is DeliveryOutcome.DISPATCHED
    assert again.detail["mesh_message_id"] == first.detail["mesh_message_id"]
    assert again.detail["already_sent"] is True
    assert len(partner.list_messages()) == 1


async def test_unknown_recipient_is_permanent_with_a_reason(channel: MeshChannel) -> None:
    result = await channel.deliver(envelope(), target(mailbox="X26NOPE9"))
    assert result.outcome is DeliveryOutcome.PERMANENT
    assert result.reason == "mesh_unknown_recipient"
    assert result.detail["http_status"] == 417
    assert result.detail["mesh_error_code"] == "12"


async def test_target_without_workflow_is_permanent(channel: MeshChannel) -> None:
    result = await channel.deliver(envelope(), {"mailbox": RECIPIENT})
    assert result.outcome is DeliveryOutcome.PERMANENT
    assert result.reason == "mesh_invalid_target"


@pytest.mark.parametrize("wrong", ["password", "shared_key"])
async def test_wrong_credentials_are_permanent_and_send_nothing(
    sandbox: MeshSandbox, partner: Any, wrong: str
) -> None:
    channel = MeshChannel(gateway_config(sandbox, **{wrong: "not-the-right-one"}))
    try:
        result = await channel.deliver(envelope(), target())
        with pytest.raises(MeshApiError) as raised:
            await channel.client.handshake()
    finally:
        await channel.close()
    assert result.outcome is DeliveryOutcome.PERMANENT
    assert result.reason == "mesh_auth_failed"
    assert raised.value.code == "mesh_auth_failed"
    assert raised.value.http_status == 403
    assert partner.list_messages() == []


async def test_only_the_recipient_sees_the_message(
    channel: MeshChannel, sandbox: MeshSandbox
) -> None:
    await channel.deliver(envelope(), target())
    bystander = partner_client(sandbox, OTHER)
    try:
        assert bystander.list_messages() == []
    finally:
        bystander.close()


async def test_secrets_never_appear_in_reprs_or_tokens(sandbox: MeshSandbox) -> None:
    config = gateway_config(sandbox, password="s3cret-pw", shared_key="s3cret-key")
    client = MeshClient(config)
    shown = " ".join([repr(config), str(config), repr(client), client._auth()])
    await client.close()
    assert "s3cret-pw" not in shown
    assert "s3cret-key" not in shown


async def test_inbox_listing_follows_pages_and_filters_by_workflow(
    channel: MeshChannel, partner: Any
) -> None:
    for number in range(23):
        partner.send_message(SENDER, b"r%d" % number, workflow_id=RECEIPT_WORKFLOW)
    partner.send_message(SENDER, b"other", workflow_id="PATH_RESULTS")

    everything = await channel.client.list_inbox(page_size=10)
    receipts = await channel.client.list_inbox(workflow_filter=RECEIPT_WORKFLOW)

    assert len(everything) == len(set(everything)) == 24
    assert len(receipts) == 23


async def test_we_download_chunked_gzipped_messages_byte_identical(
    channel: MeshChannel, partner: Any
) -> None:
    receipt = os.urandom(12 * 1000 * 1000)
    partner.send_message(
        SENDER,
        receipt,
        workflow_id=RECEIPT_WORKFLOW,
        max_chunk_size=int(5.5 * MIB),
        compress=True,
    )
    events = Recorder()
    await MeshInboxPoller(channel.client).poll_inbox(events)
    [event] = events.events
    assert isinstance(event, ReceiptArrived)
    assert event.body == receipt


async def test_one_poll_reads_the_inbox_and_tracks_what_the_handler_says_is_pending(
    channel: MeshChannel, partner: Any
) -> None:
    sealed = envelope()
    mesh_id = (await channel.deliver(sealed, target())).detail["mesh_message_id"]
    receive_all(partner)
    partner.send_message(SENDER, b"receipt", workflow_id=RECEIPT_WORKFLOW)
    events = Recorder(dispatched=[Dispatched(mesh_id, sealed.message_id)])

    counts = await MeshInboxPoller(channel.client).poll_once(events)

    assert [type(event) for event in events.events] == [ReceiptArrived, TransportAcknowledged]
    assert counts == {"events": 2, "acknowledged": 1, "ignored": 0, "handler_failures": 0}


async def test_a_poll_while_mesh_is_away_is_counted_not_raised(sandbox: MeshSandbox) -> None:
    away = MeshChannel(gateway_config(sandbox, base_url=f"http://127.0.0.1:{free_port()}"))
    events = Recorder(dispatched=[Dispatched("20200101000000000000_ABCDEF")])
    try:
        assert await MeshInboxPoller(away.client).poll_once(events) == {"unreachable": 1}
    finally:
        await away.close()
    assert events.events == []
