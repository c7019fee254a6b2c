"""A broker connection lost and regained writes a few structured lines, none a traceback."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agreements.loader import default_catalog_dir, load_catalog
from gateway.logging import configure_logging
from gateway.queue.rabbit import RabbitTransport
from gateway.queue.retry import RetryPolicy
from gateway.queue.topology import build_topology
from gateway.settings import load_settings
from tests.integration.rabbit_helpers import (
    Recorder,
    broker_behind_proxy,
    delete_topology,
    unique_prefix,
    wait_until,
)
from tests.service_process import ServiceProcess, seeded_environment
from tests.services import unique_name
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.rabbitmq


async def test_a_reconnect_is_a_few_json_lines_at_the_right_level(
    amqp_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    proxy = await TcpProxy("127.0.0.1", 5672).start()
    prefix = unique_prefix()
    topology = build_topology(prefix, ["alpha"], RetryPolicy.parse("200ms", 2))
    url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/?reconnect_interval=0.5"
    configure_logging("json", "info")
    transport = await RabbitTransport.connect(url, topology, connection_name=prefix)
    try:
        await transport.declare()
        await transport.consume(["alpha"], Recorder(), prefetch=2)
        capsys.readouterr()
        proxy.cut()
        await asyncio.sleep(1.2)  # a couple of failed attempts while the broker is away
        proxy.restore()
        await wait_until(lambda: transport.reconnects == 1)
        lines = capsys.readouterr().err.splitlines()
    finally:
        await transport.close(grace=1.0)
        await proxy.close()
        await delete_topology(amqp_url, topology)
    events = [json.loads(line) for line in lines]  # every line is one JSON object
    assert not [line for line in lines if "Traceback" in line]
    assert not [e for e in events if "exception" in e or e["level"] in ("error", "critical")]
    lost = [e for e in events if e.get("logger") == "aiormq.connection"]
    assert len(lost) == 1
    assert lost[0]["level"] == "warning"
    assert "AMQPConnectionError" in lost[0]["event"]  # the cause, in its one line
    attempts = [e for e in events if str(e["event"]).startswith("Connection attempt")]
    assert attempts, "the broker was away for at least one attempt"
    assert {e["level"] for e in attempts} == {"warning"}
    # Per attempt: aio-pika's "closed, reconnecting" and "attempt failed"; then the loss and
    # the first "closed", and our own line when it is back.
    assert len(events) <= 2 * len(attempts) + 3, lines
    assert [e["level"] for e in events if e["event"] == "broker_reconnected"] == ["warning"]


async def test_a_worker_losing_the_broker_during_start_up_exits_with_one_line(
    tmp_path: Path, amqp_url: str
) -> None:
    async with broker_behind_proxy(tmp_path, amqp_url, "startup") as broker:
        # connected, then lost while declaring the topology
        broker.proxy.cut_after(broker.prefix.encode())
        service = ServiceProcess(broker.env, role="worker", log=tmp_path / "worker.log")
        code = await _exit_code(service)
    text = service.log.read_text()
    assert code == 1, text[-2000:]
    assert "Traceback" not in text, text[-3000:]
    assert "uncaught_exception" not in text
    assert "the broker went away during start-up" in text.strip().splitlines()[-1], text[-1000:]


@pytest.mark.slow
async def test_under_gunicorn_a_process_started_while_the_broker_is_away_is_started_again(
    tmp_path: Path, amqp_url: str
) -> None:
    log = tmp_path / "gateway.log"

    def events(name: str) -> list[dict[str, object]]:
        lines = log.read_text().splitlines() if log.exists() else []
        return [e for e in map(json.loads, lines) if e.get("event") == name]

    async with broker_behind_proxy(tmp_path, amqp_url, "respawn") as broker:
        service = ServiceProcess(broker.env, role="all", processes=2, log=log)
        broker.proxy.cut()  # away before either process starts
        starting = asyncio.create_task(asyncio.to_thread(service.start, 90))
        try:
            await wait_until(lambda: len(events("start_failed")) >= 3, 60)
            assert service.proc is not None
            assert service.proc.poll() is None, "the arbiter halted"
            assert {e["reason"] for e in events("start_failed")} == {"broker_unavailable"}
            broker.proxy.restore()
            await starting  # the API answers: a process started again once the broker was back
            await wait_until(lambda: len(events("delivery_started")) >= 2, 60)
        finally:
            starting.cancel()
            code = await asyncio.to_thread(service.stop)
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert "Worker failed to boot" not in text
    assert "Traceback" not in text


@pytest.mark.slow
async def test_under_gunicorn_a_topology_conflict_stops_the_service(
    tmp_path: Path, amqp_url: str
) -> None:
    prefix = unique_name("conflict")
    partners = list(load_catalog(default_catalog_dir()).partners)
    other = build_topology(prefix, partners, load_settings().retry_policy, delivery_limit=3)
    declared = await RabbitTransport.connect(amqp_url, other, connection_name=prefix)
    await declared.declare()
    await declared.close(grace=1.0)
    env, _token = await asyncio.to_thread(
        seeded_environment,
        tmp_path,
        GATEWAY_BROKER_URL=amqp_url,
        GATEWAY_BROKER_PREFIX=prefix,
        GATEWAY_LOG_FORMAT="json",
    )
    service = ServiceProcess(env, role="worker", processes=2, log=tmp_path / "worker.log")
    try:
        code = await _exit_code(service)
    finally:
        await delete_topology(amqp_url, other)
    text = service.log.read_text()
    events = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    # gunicorn's "worker failed to boot" halts it (3; or 1 when a second process fails the same
    # way while it stops): a restart would not help.
    assert code in (1, 3), text[-2000:]
    assert "Worker failed to boot" in text
    failed = {e["reason"] for e in events if e["event"] == "start_failed"}
    assert failed == {"broker_topology_conflict"}


async def _exit_code(service: ServiceProcess) -> int:
    """Start a service expected to stop by itself; its exit code."""
    try:
        await asyncio.to_thread(service.start)
        assert service.proc is not None
        return await asyncio.to_thread(service.proc.wait, 60)
    finally:
        await asyncio.to_thread(service.stop, 10.0)
