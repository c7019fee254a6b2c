"""Under a broker outage, every line a real service writes (our code, aio-pika, aiormq,
asyncio, gunicorn's arbiter and workers) is one JSON object."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import pytest

from agreements.loader import default_catalog_dir, load_catalog
from gateway.queue.topology import build_topology
from gateway.settings import load_settings
from tests.gateway_support import adult_submission
from tests.integration.rabbit_helpers import delete_topology
from tests.security.support import TcpProxy, log_lines, not_json, until
from tests.service_process import ServiceProcess, seeded_environment
from tests.services import unique_name

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def _post(url: str, token: str) -> int:
    request = urllib.request.Request(  # noqa: S310 - loopback
        url + "/v1/disclosures",
        data=json.dumps(adult_submission()).encode(),  # a webhook partner
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
        return int(resp.status)


def test_every_line_is_json_when_the_broker_goes_away(tmp_path: Path, amqp_url: str) -> None:
    proxy = TcpProxy(("127.0.0.1", 5672))
    prefix = unique_name("logs")
    env, token = seeded_environment(
        tmp_path,
        GATEWAY_BROKER_URL=f"amqp://guest:guest@127.0.0.1:{proxy.port}/",
        GATEWAY_BROKER_PREFIX=prefix,
        GATEWAY_LOG_FORMAT="json",
    )
    log = tmp_path / "gateway.log"
    service = ServiceProcess(env, role="all", processes=2, log=log).start(timeout=60)
    try:
        assert [_post(service.url, token) for _ in range(3)] == [202] * 3
        proxy.cut()
        assert [_post(service.url, token) for _ in range(3)] == [202] * 3
        until(
            lambda: sum('"logger":"aio_pika' in line for line in log_lines(log)) >= 2,
            "aio-pika reports the lost connection in both processes",
            timeout=60,
        )
    finally:
        assert service.stop() == 0
        partners = list(load_catalog(default_catalog_dir()).partners)
        topology = build_topology(prefix, partners, load_settings().retry_policy)
        asyncio.run(delete_topology(amqp_url, topology))
    lines = log_lines(log)
    loggers = {json.loads(line).get("logger", "") for line in lines if not not_json([line])}
    # The libraries did speak, so the check means something.
    assert {"gunicorn.error"} <= loggers, loggers
    assert any(name.startswith(("aio_pika", "aiormq")) for name in loggers), loggers
    assert not_json(lines) == [], "\n".join(not_json(lines)[:20])
