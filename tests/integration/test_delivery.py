"""The delivery engine end to end, on RabbitMQ and on the embedded queue (one suite, both modes).

Envelopes are sealed for real partner simulators on loopback; the store is SQLite (and
PostgreSQL for the happy path). Every wait polls with a deadline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from agreements.model import RetryOverride
from gateway.cli.admin import main as admin_main
from gateway.delivery.dead_letters import list_dead_letters
from gateway.delivery.engine import DeliveryOptions
from gateway.jose import b64url_digest
from gateway.partner_sim import FaultRates, ReceiptMode
from gateway.store import delivery_records, partners_repo
from gateway.store.disclosure_model import Status
from gateway.store.tables import audit_log, outbox
from tests.integration.delivery_support import TEMPLATE_AGREEMENT, Rig, utc_now, wait_until
from tests.integration.rabbit_helpers import delete_topology, unique_prefix
from tests.services import AMQP_URL, require_service

MODES = ["embedded", "rabbitmq"]


async def open_rig(mode: str, tmp_path: Path, database_url: str, **kwargs: object) -> Rig:
    if mode == "rabbitmq":
        require_service("RabbitMQ", "127.0.0.1", 5672)
        kwargs.update(broker_url=AMQP_URL, broker_prefix=unique_prefix())
    return await Rig.open(tmp_path, database_url=database_url, **kwargs)  # type: ignore[arg-type]


async def close_rig(rig: Rig) -> None:
    topology = rig.service.transport.topology if rig.service and rig.service.transport else None
    await rig.close()
    if topology is not None:
        await delete_topology(AMQP_URL, topology)


@pytest.fixture(params=MODES)
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    built = await open_rig(request.param, tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'gh.db'}")
    yield built
    await close_rig(built)


def types(events: list[object]) -> list[str]:
    return [e.type for e in events]  # type: ignore[attr-defined]


async def test_happy_path_delivered_receipted_timeline_complete(rig: Rig) -> None:
    sim = await rig.add_partner("homecare-a")
    await rig.start()
    ids = await rig.submit("homecare-a", 5)
    await rig.wait_for(ids, Status.RECEIPTED)
    for id_ in ids:
        timeline = await rig.timeline(id_)
        assert types(timeline) == ["accepted", "receipted"]
        assert timeline[1].detail["via"] == "webhook"
        entry = sim.ledger.get(id_)
        assert entry is not None
        assert entry.count == 1
        assert entry.status == "received"
    assert sim.ledger.duplicates == 0
    expected = {"delivered"} if rig.service and rig.service.mode == "embedded" else {"published"}

    async def outbox_rows_settled() -> bool:
        async with rig.store.read() as conn:
            return set(await conn.scalars(select(outbox.c.state))) == expected

    # Embedded: a finished row is marked with the queue's next claim, just after its receipt.
    await wait_until(outbox_rows_settled)


@pytest.mark.postgres
@pytest.mark.parametrize("mode", MODES)
async def test_happy_path_on_postgresql(mode: str, tmp_path: Path, postgres_url: str) -> None:
    rig = await open_rig(mode, tmp_path, postgres_url)
    try:
        sim = await rig.add_partner("homecare-pg")
        await rig.start()
        ids = await rig.submit("homecare-pg", 20)
        await rig.wait_for(ids, Status.RECEIPTED)
        assert len(sim.ledger) == 20
        assert sim.ledger.duplicates == 0
    finally:
        await close_rig(rig)


async def test_flaky_partner_retried_with_growing_delays_others_unaffected(rig: Rig) -> None:
    patient = RetryOverride(
        max_attempts=40, first_delay=timedelta(milliseconds=50),
        max_delay=timedelta(milliseconds=400),
    )  # fmt: skip
    flaky = await rig.add_partner("flaky", faults=FaultRates(fail_rate=1.0), retry=patient)
    steady = await rig.add_partner("steady")
    await rig.start()
    stuck = await rig.submit("flaky", 2)
    fine = await rig.submit("steady", 5)
    await rig.wait_for(fine, Status.RECEIPTED)

    async def retried_three_times() -> bool:
        return types(await rig.timeline(stuck[0])).count("delivery_retry") >= 3

    await wait_until(retried_three_times)
    assert (await rig.statuses(stuck)) == dict.fromkeys(stuck, Status.QUEUED)
    assert len(steady.ledger) == 5
    retries = [e.detail for e in await rig.timeline(stuck[0]) if e.type == "delivery_retry"]
    delays = [r["retry_in_ms"] for r in retries]
    assert delays[:3] == [50, 100, 200]
    assert [r["attempt"] for r in retries[:3]] == [1, 2, 3]
    assert {r["reason"] for r in retries} == {"partner_server_error"}

    flaky.set_faults(fail_rate=0.0)
    await rig.wait_for(stuck, Status.RECEIPTED)
    assert all(flaky.ledger.get(i) is not None for i in stuck)


async def test_each_agreement_retries_by_its_own_policy_on_a_shared_partner(rig: Rig) -> None:
    """Two agreements with one partner: each disclosure waits its own agreement's delays, on
    RabbitMQ too (shared delay queues; an agreement added while running gets its tiers)."""
    quick = RetryOverride(
        max_attempts=40, first_delay=timedelta(milliseconds=50),
        max_delay=timedelta(milliseconds=400),
    )  # fmt: skip
    slow = RetryOverride(
        max_attempts=40, first_delay=timedelta(milliseconds=300),
        max_delay=timedelta(milliseconds=1200),
    )  # fmt: skip
    await rig.add_partner("shared", faults=FaultRates(fail_rate=1.0), retry=quick)
    await rig.start()
    later = TEMPLATE_AGREEMENT.model_copy(
        update={"id": "TEST-shared-later", "partner": "shared", "retry": slow}
    )
    await rig.save_agreement(later)  # the more patient one, added while the engine runs
    [fast] = await rig.submit("shared", 1)
    [patient] = await rig.submit("shared", 1, agreement_id=later.id)

    async def delays(id_: str) -> list[int]:
        events = await rig.timeline(id_)
        return [e.detail["retry_in_ms"] for e in events if e.type == "delivery_retry"]

    async def both_retried() -> bool:
        return len(await delays(fast)) >= 3 and len(await delays(patient)) >= 2

    await wait_until(both_retried)
    assert (await delays(fast))[:3] == [50, 100, 200]
    assert (await delays(patient))[:2] == [300, 600]


async def test_partner_down_for_good_dead_lettered_then_replayed(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = await rig.add_partner("down", faults=FaultRates(fail_rate=1.0))
    await rig.start()
    [id_] = await rig.submit("down")
    await rig.wait_for([id_], Status.FAILED)
    timeline = await rig.timeline(id_)
    assert types(timeline).count("delivery_retry") == 3  # 4 attempts, 3 waits between them
    failed = timeline[-1]
    assert failed.type == "failed"
    assert failed.detail["reason"] == "delivery_attempts_exhausted"
    assert failed.detail["last_reason"] == "partner_server_error"
    [dead] = await list_dead_letters(rig.store, partner="down")
    assert (dead.disclosure_id, dead.reason, dead.attempts) == (
        id_, "delivery_attempts_exhausted", 4,
    )  # fmt: skip
    service = rig.service
    assert service is not None
    if service.transport is not None:  # parked in the partner's own dead-letter queue
        topology = service.transport.topology
        depths = {d.queue: d.messages for d in await service.transport.queue_depths()}
        assert depths[topology.dead_queue("down")] == 1
    else:
        async with rig.store.read() as conn:
            assert await conn.scalar(select(outbox.c.state)) == "dead"
    assert len(sim.ledger) == 0

    sim.set_faults(fail_rate=0.0)
    monkeypatch.setenv("GATEWAY_DATABASE_URL", rig.settings.database_url)
    monkeypatch.setenv("GATEWAY_BROKER_URL", rig.settings.broker_url)
    monkeypatch.setenv("GATEWAY_BROKER_PREFIX", rig.settings.broker_prefix)
    code = await asyncio.to_thread(
        admin_main, ["deadletters", "replay", id_, "--actor", "oncall.jbloggs", "--json"]
    )
    assert code == 0
    out = capsys.readouterr().out  # the service's own log lines share stdout in a test
    result, _ = json.JSONDecoder().raw_decode(out[out.index('{\n  "replayed"') :])
    assert result["replayed"] == [id_]
    via = "from_dead_letter_queue" if service.transport is not None else "from_outbox"
    assert result[via] == [id_]
    await rig.wait_for([id_], Status.RECEIPTED)
    assert types(await rig.timeline(id_))[-3:] == ["failed", "replayed", "receipted"]
    entry = sim.ledger.get(id_)
    assert entry is not None
    assert entry.count == 1
    assert await list_dead_letters(rig.store) == []
    async with rig.store.read() as conn:
        actors = list(
            await conn.execute(
                select(audit_log.c.actor_name).where(audit_log.c.action == "disclosure.replayed")
            )
        )
    assert [a.actor_name for a in actors] == ["oncall.jbloggs"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_partner_sees_at_most_its_concurrency_however_much_is_taken(
    mode: str, tmp_path: Path
) -> None:
    """Prefetch (64 taken) is not the partner's load: GATEWAY_PARTNER_CONCURRENCY is."""
    rig = await open_rig(
        mode, tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'gh.db'}", partner_concurrency=3
    )
    try:
        sim = await rig.add_partner("slow-partner", slow_ms=40)
        # All queued before the engine starts: on a slow machine, rows accepted one by one
        # while it runs can trickle in slower than they are delivered, and never make 3.
        ids = await rig.submit("slow-partner", 24)
        await rig.start()
        await rig.wait_for(ids, Status.RECEIPTED)
        assert sim.peak_in_flight == 3  # reached, never passed
        assert sim.ledger.arrivals == 24
    finally:
        await close_rig(rig)


async def test_async_receipt_moves_dispatched_to_receipted(rig: Rig) -> None:
    sim = await rig.add_partner("async-partner", receipts=ReceiptMode.ASYNC)
    await rig.start()
    ids = await rig.submit("async-partner", 3)
    await rig.wait_for(ids, Status.RECEIPTED)
    for id_ in ids:
        timeline = await rig.timeline(id_)
        # The partner may post its receipt before the gateway has recorded its 202: the hand-over
        # is in the timeline either way, before or after the receipt that overtook it.
        assert sorted(types(timeline)) == ["accepted", "dispatched", "receipted"]
        by_type = {event.type: event for event in timeline}
        assert by_type["dispatched"].detail["status"] == 202
        assert by_type["receipted"].detail["via"] == "api"
    assert sim.ledger.duplicates == 0


async def test_receipt_deadline_resends_same_envelope_then_receipt_overdue(rig: Rig) -> None:
    sim = await rig.add_partner(
        "silent", receipts=ReceiptMode.NEVER, receipt_deadline=timedelta(milliseconds=300)
    )
    rig.options = dataclasses.replace(rig.options, resend_limit=2)
    await rig.start()
    [id_] = await rig.submit("silent")
    await rig.wait_for([id_], Status.FAILED)
    timeline = await rig.timeline(id_)
    assert types(timeline) == [
        "accepted", "dispatched", "resend", "dispatched", "resend", "dispatched", "failed",
    ]  # fmt: skip
    assert timeline[-1].detail["reason"] == "receipt_overdue"
    entry = sim.ledger.get(id_)
    assert entry is not None
    assert entry.count == 3  # the same message id, three times ...
    assert entry.digests == [b64url_digest(rig.sealed[id_])]  # ... and the same bytes
    [dead] = await list_dead_letters(rig.store)
    assert dead.reason == "receipt_overdue"


async def test_suspended_agreement_holds_then_resumes(rig: Rig) -> None:
    sim = await rig.add_partner("paused")
    await rig.set_agreement_status("paused", "suspended")
    await rig.start()
    [id_] = await rig.submit("paused")

    async def held() -> bool:
        return "delivery_held" in types(await rig.timeline(id_))

    await wait_until(held)
    assert await rig.status(id_) is Status.QUEUED
    assert len(sim.ledger) == 0
    await rig.set_agreement_status("paused", "active")
    await rig.wait_for([id_], Status.RECEIPTED)
    assert types(await rig.timeline(id_)) == ["accepted", "delivery_held", "receipted"]
    assert sim.ledger.get(id_) is not None
    assert len(sim.ledger) == 1


async def test_terminated_agreement_fails_without_sending(rig: Rig) -> None:
    sim = await rig.add_partner("ended")
    await rig.set_agreement_status("ended", "terminated")
    await rig.start()
    [id_] = await rig.submit("ended")
    await rig.wait_for([id_], Status.FAILED)
    assert (await rig.timeline(id_))[-1].detail["reason"] == "agreement_terminated"
    assert len(sim.ledger) == 0


async def test_permanent_refusal_fails_at_once(rig: Rig) -> None:
    sim = await rig.add_partner("strict")
    # A partner endpoint that answers 404: a permanent refusal, never retried.
    endpoint = {"endpoint": f"{sim.base_url}/nowhere"}
    partner = partners_repo.StoredPartner("strict", "Strict", "care_provider", "webhook", endpoint)
    at = utc_now()
    await rig.store.write(lambda conn: partners_repo.save_partner(conn, partner, at=at))
    await rig.policy.refresh()
    await rig.start()
    [id_] = await rig.submit("strict")
    await rig.wait_for([id_], Status.FAILED)
    timeline = await rig.timeline(id_)
    assert types(timeline) == ["accepted", "failed"]
    assert timeline[-1].detail == {"reason": "partner_refused", "attempts": 1}


async def test_duplicate_of_a_receipted_disclosure_is_not_sent_again(rig: Rig) -> None:
    sim = await rig.add_partner("dedup")
    await rig.start()
    [id_] = await rig.submit("dedup")
    await rig.wait_for([id_], Status.RECEIPTED)
    # As after a crash between the broker's confirm and the relay's mark: the row is due again.
    due = utc_now()
    await rig.store.write(lambda conn: delivery_records.reschedule(conn, id_, available_at=due))
    rig.service.notify()  # type: ignore[union-attr]

    service = rig.service
    assert service is not None

    async def duplicate_handled() -> bool:
        async with rig.store.read() as conn:
            if await conn.scalar(select(outbox.c.state)) == "pending":
                return False
        if service.transport is None:
            return True
        depths = await service.transport.queue_depths()
        queue = service.transport.topology.delivery_queue("dedup")
        return all(d.messages == 0 for d in depths if d.queue == queue)

    await wait_until(duplicate_handled)
    entry = sim.ledger.get(id_)
    assert entry is not None
    assert entry.count == 1
    assert types(await rig.timeline(id_)) == ["accepted", "receipted"]


async def test_a_delivery_longer_than_the_lease_is_not_claimed_again(tmp_path: Path) -> None:
    """The embedded queue renews the lease of a row it still holds, so it is sent once."""
    options = DeliveryOptions(
        poll_interval=0.02, claim_lease=timedelta(milliseconds=600), deadline_interval=0.1,
        hold_recheck=timedelta(milliseconds=200),
    )  # fmt: skip
    rig = await open_rig(
        "embedded", tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'gh.db'}",
        options=options, webhook_timeout=5.0,
    )  # fmt: skip
    try:
        sim = await rig.add_partner("slow-partner", slow_ms=2000)  # over three leases
        await rig.start()
        ids = await rig.submit("slow-partner", 2)
        await rig.wait_for(ids, Status.RECEIPTED)
        assert sim.ledger.arrivals == 2  # each envelope once: no lease ran out in hand
        assert sim.peak_in_flight == 2
    finally:
        await close_rig(rig)
