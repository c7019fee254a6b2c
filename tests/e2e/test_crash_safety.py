"""kill -9 the gateway mid-flight, more than once: every accepted disclosure still ends receipted.

The gateway runs as a real `gateway serve --role all` subprocess; the partner is the simulator
in this process. On RabbitMQ the broker connections are also closed from the server side.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from agreements.loader import default_catalog_dir, load_catalog
from agreements.samples import adult_record
from gateway import audit
from gateway.application.catalog_apply import apply_catalog
from gateway.application.client_systems import add_client
from gateway.application.partner_key_admin import add_partner_key
from gateway.demo import catalog_with_endpoints
from gateway.partner_keys import PartnerKey
from gateway.partner_sim import PartnerConfig, PartnerSimulator
from gateway.queue.retry import RetryPolicy
from gateway.queue.topology import build_topology
from gateway.service import Gateway
from gateway.settings import load_settings
from gateway.store.database import Store
from gateway.store.dialects import DatabaseOptions
from gateway.store.tables import disclosures
from tests.integration.rabbit_helpers import delete_topology
from tests.service_process import ServiceProcess, free_port
from tests.services import unique_name

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
ACTOR = audit.Actor(audit.ActorKind.ADMIN, "crash-test")
PARTNER = "medway-homecare"
RETRY_DELAYS = "1s,1s,2s,3s"


@dataclass
class Run:
    """The gateway under test, its partner, and what the clients were told."""

    env: dict[str, str]
    url: str
    token: str
    sim: PartnerSimulator
    log: Path
    accepted: set[str] = field(default_factory=set)
    refused: int = 0


async def _seed(tmp: Path, database_url: str, sim_url: str, sim: PartnerSimulator) -> str:
    settings = load_settings(database_url=database_url, keys_dir=tmp / "keys")
    gateway = await Gateway.open(settings)
    try:
        now = gateway.clock()
        catalog = load_catalog(catalog_with_endpoints(tmp, {PARTNER: sim_url + "/in"}))
        await apply_catalog(gateway.store, catalog, actor=ACTOR, at=now)
        enc, sig = sim.public_keys()
        for jwk, use in ((enc, "enc"), (sig, "sig")):
            key = PartnerKey.from_jwk(PARTNER, jwk, use=use, not_before=now - timedelta(1))
            await add_partner_key(gateway.store, key, actor=ACTOR, at=now)
        issued = await add_client(
            gateway.store, "crash-client", ["KM-DOM-006"], actor=ACTOR, at=now
        )
        return issued.token
    finally:
        await gateway.close()


@contextlib.asynccontextmanager
async def _run(tmp: Path, database_url: str, broker: dict[str, str]) -> AsyncIterator[Run]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sim = PartnerSimulator(PartnerConfig(
        partner_id=PARTNER, council_jwks=f"{url}/.well-known/jwks.json", seed=3,
    ))  # fmt: skip
    sim_url = await sim.start()
    token = await _seed(tmp, database_url, sim_url, sim)
    env = {
        "GATEWAY_DATABASE_URL": database_url, "GATEWAY_KEYS_DIR": str(tmp / "keys"),
        "GATEWAY_PORT": str(port), "GATEWAY_OPS_PORT": str(free_port()),
        "GATEWAY_ALLOW_INSECURE_LOOPBACK": "1",
        "GATEWAY_RETRY_DELAYS": RETRY_DELAYS, "GATEWAY_RETRY_MAX_ATTEMPTS": "20",
        "GATEWAY_LOG_LEVEL": "warning", **broker,
    }  # fmt: skip
    try:
        yield Run(env, url, token, sim, tmp / "gateway.log")
    finally:
        await sim.stop()


async def _submit(run: Run, session: aiohttp.ClientSession, key: str) -> None:
    """Submit once, retrying with the same Idempotency-Key until the gateway gives an answer."""
    body = {
        "agreement": "KM-DOM-006", "purpose": "direct_care",
        "subject": {"nhs_number": "9990000026"}, "record": adult_record(),
        "requested_by": {"user": "sw-1", "role": "care_manager"}, "reason": "crash test",
    }  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            async with session.post(
                f"{run.url}/v1/disclosures", json=body, headers={"Idempotency-Key": key}
            ) as resp:
                if resp.status == 202:
                    run.accepted.add((await resp.json())["id"])
                else:
                    run.refused += 1
                return
        except (TimeoutError, aiohttp.ClientError):
            await asyncio.sleep(0.2)  # the gateway died under this request: ask again
    raise AssertionError("no answer from the gateway for two minutes")


async def _load(run: Run, count: int, concurrency: int = 8) -> None:
    headers = {"Authorization": f"Bearer {run.token}"}
    timeout = aiohttp.ClientTimeout(total=10)
    keys = [unique_name("submission") for _ in range(count)]
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:

        async def worker() -> None:
            while keys:
                await _submit(run, session, keys.pop())

        await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _statuses(database_url: str) -> dict[str, str]:
    store = await Store.open(database_url, DatabaseOptions(pool_size=1))
    try:
        async with store.read() as conn:
            rows = await conn.execute(select(disclosures.c.id, disclosures.c.status))
            return {row.id: row.status for row in rows}
    finally:
        await store.close()


def _close_broker_connections() -> None:
    if shutil.which("rabbitmqctl"):
        subprocess.run(
            ["rabbitmqctl", "close_all_connections", "crash test"],
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip


async def _crash_and_recover(run: Run, database_url: str, *, broker: bool) -> None:
    service = await asyncio.to_thread(ServiceProcess(run.env, log=run.log).start)
    loader = asyncio.create_task(_load(run, 300))
    for threshold in (60, 140):
        deadline = time.monotonic() + 60
        while len(run.accepted) < threshold and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        service.kill()  # kill -9, mid-flight
        service = await asyncio.to_thread(ServiceProcess(run.env, log=run.log).start)
        if broker:
            await asyncio.to_thread(_close_broker_connections)
    await loader
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            statuses = await _statuses(database_url)
            if statuses and all(s == "receipted" for s in statuses.values()):
                break
            await asyncio.sleep(0.5)
    finally:
        assert service.stop() == 0
    assert len(run.accepted) == 300, run.refused
    assert all(statuses.get(i) == "receipted" for i in run.accepted), "an accepted one was lost"
    assert set(statuses.values()) == {"receipted"}, "a recorded one never finished"
    seen = {entry["message_id"] for entry in run.sim.ledger.to_dict()["entries"]}
    assert seen == set(statuses), "the partner saw an id we never recorded, or missed one"


async def test_kill_9_embedded_queue(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gatehouse.db'}"
    async with _run(tmp_path, url, {}) as run:
        await _crash_and_recover(run, url, broker=False)


async def test_kill_9_rabbitmq_and_postgres(
    tmp_path: Path, postgres_url: str, amqp_url: str
) -> None:
    prefix = unique_name("crash")
    broker = {"GATEWAY_BROKER_URL": amqp_url, "GATEWAY_BROKER_PREFIX": prefix}
    try:
        async with _run(tmp_path, postgres_url, broker) as run:
            await _crash_and_recover(run, postgres_url, broker=True)
    finally:
        partners = list(load_catalog(default_catalog_dir()).partners)
        retry = RetryPolicy.parse(RETRY_DELAYS, 20)
        await delete_topology(amqp_url, build_topology(prefix, partners, retry))
