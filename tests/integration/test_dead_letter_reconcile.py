"""The dead-letter reconciler repairs what earlier versions left behind: a disclosure `queued` for
good, its message dead-lettered (or lost) with no `failed` row. Real RabbitMQ and SQLite."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from sqlalchemy import update

from gateway.application.dead_letter_reconcile import reconcile_dead_letters
from gateway.cli.admin import main as admin_main
from gateway.delivery.dead_letters import list_dead_letters, replay
from gateway.queue.messages import HEADER_DEAD_REASON, HEADER_REASON
from gateway.queue.rabbit import RabbitTransport
from gateway.queue.topology import build_topology
from gateway.store import delivery_records
from gateway.store.disclosure_model import Status
from gateway.store.tables import outbox
from gateway.store.unit_of_work import Connection
from tests.integration.delivery_support import CLIENT, Rig, utc_now
from tests.integration.rabbit_helpers import delete_topology
from tests.integration.test_delivery import close_rig, open_rig, types
from tests.services import AMQP_URL


async def set_outbox(rig: Rig, id_: str, **values: Any) -> None:
    async def work(conn: Connection) -> None:
        await conn.execute(update(outbox).where(outbox.c.disclosure_id == id_).values(values))

    await rig.store.write(work)


async def park(rig: Rig, partner: str, id_: str) -> None:
    """Dead-letter a message as an earlier version did: into the queue, nothing recorded."""
    topology = build_topology(rig.settings.broker_prefix, [partner], rig.settings.retry_policy)
    transport = await RabbitTransport.connect(AMQP_URL, topology)
    try:
        await transport.declare()
    finally:
        await transport.close(0)
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(topology.dead_exchange)
        headers = {HEADER_DEAD_REASON: "attempts_exhausted", HEADER_REASON: "handler_error"}
        message = aio_pika.Message(rig.sealed[id_], message_id=id_, headers=headers)
        await exchange.publish(message, routing_key=partner)


async def admin_json(*argv: str) -> Any:
    code = await asyncio.to_thread(admin_main, [*argv, "--json"])
    assert code == 0
    return code


@pytest.mark.rabbitmq
async def test_reconcile_records_what_the_broker_parked_and_requeues_what_was_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rig = await open_rig("rabbitmq", tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'gh.db'}")
    try:
        sim = await rig.add_partner("stranded")
        parked, lost, fine = await rig.submit("stranded", 3)
        now = utc_now()
        await set_outbox(rig, parked, state="published", published_at=now)
        await set_outbox(rig, lost, state="published", published_at=now - timedelta(hours=3))
        await set_outbox(rig, fine, state="published", published_at=now)  # still on its way
        await park(rig, "stranded", parked)
        assert await list_dead_letters(rig.store) == []  # invisible: the defect

        for name, value in (
            ("GATEWAY_DATABASE_URL", rig.settings.database_url),
            ("GATEWAY_BROKER_URL", rig.settings.broker_url),
            ("GATEWAY_BROKER_PREFIX", rig.settings.broker_prefix),
        ):
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        await admin_json("deadletters", "reconcile")
        out = capsys.readouterr().out
        report = json.JSONDecoder().raw_decode(out[out.index('{\n  "failed"') :])[0]
        assert report["failed"] == [{"disclosure_id": parked, "last_reason": "attempts_exhausted"}]
        assert report["requeued"] == [lost]
        assert report["parked_seen"] == 1

        [dead] = await list_dead_letters(rig.store)
        assert (dead.disclosure_id, dead.reason) == (parked, "dead_lettered_unrecorded")
        assert await rig.status(fine) is Status.QUEUED
        assert types(await rig.timeline(lost)) == ["accepted", "requeued"]

        service = await rig.start()  # its own reconcile at start finds nothing more to do
        await rig.wait_for([lost], Status.RECEIPTED)
        result = await replay(
            rig.store, actor=CLIENT, clock=utc_now, ids=[parked], broker=service.transport
        )
        assert result.from_broker == [parked]  # the parked copy itself goes back
        await rig.wait_for([parked], Status.RECEIPTED)
        again = await service.reconcile()
        assert (again.failed, again.requeued, again.parked_seen) == ({}, [], 0)
        assert sim.ledger.get(fine) is None  # never published: only the others went
    finally:
        await close_rig(rig)


async def test_a_worker_at_start_fails_an_envelope_left_dead_but_queued(tmp_path: Path) -> None:
    rig = await open_rig("embedded", tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'gh.db'}")
    try:
        await rig.add_partner("left-dead")
        [id_] = await rig.submit("left-dead")
        await set_outbox(rig, id_, state="dead")
        await rig.start()
        await rig.wait_for([id_], Status.FAILED)
        [dead] = await list_dead_letters(rig.store)
        assert (dead.disclosure_id, dead.reason) == (id_, "dead_lettered_unrecorded")
    finally:
        await close_rig(rig)


@pytest.mark.rabbitmq
async def test_a_parked_copy_older_than_a_replay_is_left_alone(tmp_path: Path) -> None:
    """A replay racing a reconcile (the parked copy held while the replay ran) must not be
    failed again: the copy predates the replay."""
    rig = await open_rig("rabbitmq", tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'gh.db'}")
    transport: RabbitTransport | None = None
    try:
        await rig.add_partner("raced")
        [id_] = await rig.submit("raced")
        at = utc_now()
        await rig.store.write(
            lambda conn: delivery_records.fail(conn, id_, reason="partner_refused", at=at)
        )
        replayed = await replay(rig.store, actor=CLIENT, clock=utc_now, ids=[id_])
        assert replayed.from_outbox == [id_]
        await set_outbox(rig, id_, state="published", published_at=utc_now())
        await park(rig, "raced", id_)  # the copy as parked before the replay (replays: 0)
        topology = build_topology(rig.settings.broker_prefix, ["raced"], rig.settings.retry_policy)
        transport = await RabbitTransport.connect(AMQP_URL, topology)
        report = await reconcile_dead_letters(rig.store, clock=utc_now, broker=transport)
        assert (report.failed, report.parked_seen) == ({}, 1)
        assert await rig.status(id_) is Status.QUEUED
    finally:
        if transport is not None:
            await transport.close(0)
            await delete_topology(AMQP_URL, transport.topology)
        await close_rig(rig)
