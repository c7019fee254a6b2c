"""Under a broker outage, every line a real service writes (our code, aio-pika, aiormq,
asyncio, gunicorn's arbiter and workers) is one JSON object."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import pytest

from tests.gateway_support import adult_submission
from tests.integration.rabbit_helpers import broker_behind_proxy, wait_until
from tests.security.support import log_lines, not_json
from tests.service_process import ServiceProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


async def _posts(url: str, token: str, count: int) -> list[int]:
    """`count` submissions, one after another, off the event loop (the proxy runs on it)."""
    return [await asyncio.to_thread(_post, url, token) for _ in range(count)]


def _count(log: Path, text: str) -> int:
    return sum(text in line for line in log_lines(log))


def _post(url: str, token: str) -> int:
    request = urllib.request.Request(  # noqa: S310 - loopback
        url + "/v1/disclosures",
        data=json.dumps(adult_submission()).encode(),  # a webhook partner
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
        return int(resp.status)


async def test_every_line_is_json_when_the_broker_goes_away(tmp_path: Path, amqp_url: str) -> None:
    log = tmp_path / "gateway.log"
    async with broker_behind_proxy(tmp_path, amqp_url, "logs") as broker:
        service = ServiceProcess(broker.env, role="all", processes=2, log=log)
        try:
            await asyncio.to_thread(service.start, 60)
            # One process answering is not both started: cut only once both are delivering.
            await wait_until(lambda: _count(log, '"event":"delivery_started"') >= 2, 60)
            assert await _posts(service.url, broker.token, 3) == [202] * 3
            broker.proxy.cut()
            assert await _posts(service.url, broker.token, 3) == [202] * 3
            # aio-pika reports the lost connection in both processes.
            await wait_until(lambda: _count(log, '"logger":"aio_pika') >= 2, 60)
        finally:
            code = await asyncio.to_thread(service.stop)
    assert code == 0, "\n".join(log_lines(log)[-40:])
    lines = log_lines(log)
    loggers = {json.loads(line).get("logger", "") for line in lines if not not_json([line])}
    # The libraries did speak, so the check means something.
    assert {"gunicorn.error"} <= loggers, loggers
    assert any(name.startswith(("aio_pika", "aiormq")) for name in loggers), loggers
    assert not_json(lines) == [], "\n".join(not_json(lines)[:20])
