"""GATEWAY_PARTNER_CONCURRENCY holds across worker processes, on RabbitMQ and the embedded queue."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from agreements.loader import default_catalog_dir, load_catalog
from agreements.samples import adult_record
from gateway import audit
from gateway.application.catalog_apply import apply_catalog
from gateway.application.client_systems import add_client
from gateway.application.partner_key_admin import add_partner_key
from gateway.demo import catalog_with_endpoints
from gateway.partner_keys import PartnerKey
from gateway.partner_sim import PartnerConfig, PartnerSimulator
from gateway.partner_sim.faults import FaultRates
from gateway.queue.topology import build_topology
from gateway.service import Gateway
from gateway.settings import load_settings
from tests.integration.rabbit_helpers import delete_topology
from tests.service_process import ServiceProcess, free_port
from tests.services import unique_name

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]
ACTOR = audit.Actor(audit.ActorKind.ADMIN, "concurrency-test")
PARTNER = "medway-homecare"
LIMIT = 3
COUNT = 30


async def _seed(tmp: Path, database_url: str, sim: PartnerSimulator, sim_url: str) -> str:
    gateway = await Gateway.open(load_settings(database_url=database_url, keys_dir=tmp / "keys"))
    try:
        now = gateway.clock()
        catalog = load_catalog(catalog_with_endpoints(tmp, {PARTNER: sim_url + "/in"}))
        await apply_catalog(gateway.store, catalog, actor=ACTOR, at=now)
        enc, sig = sim.public_keys()
        for jwk, use in ((enc, "enc"), (sig, "sig")):
            key = PartnerKey.from_jwk(PARTNER, jwk, use=use, not_before=now - timedelta(1))
            await add_partner_key(gateway.store, key, actor=ACTOR, at=now)
        issued = await add_client(gateway.store, "load", ["KM-DOM-006"], actor=ACTOR, at=now)
        return issued.token
    finally:
        await gateway.close()


async def _submit_all(url: str, token: str) -> None:
    body = {
        "agreement": "KM-DOM-006", "purpose": "direct_care",
        "subject": {"nhs_number": "9990000026"}, "record": adult_record(),
        "requested_by": {"user": "sw-1", "role": "care_manager"}, "reason": "concurrency test",
    }  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def one() -> None:
            async with session.post(f"{url}/v1/disclosures", json=body) as resp:
                assert resp.status == 202, await resp.text()

        await asyncio.gather(*(one() for _ in range(COUNT)))


async def _two_workers_against_one_partner(
    tmp: Path, database_url: str, broker: dict[str, str]
) -> int:
    """Run 1 API and 2 worker processes; deliver COUNT envelopes; the partner's peak in flight."""
    port = free_port()
    sim = PartnerSimulator(
        PartnerConfig(
            partner_id=PARTNER,
            council_jwks=f"http://127.0.0.1:{port}/.well-known/jwks.json",
            faults=FaultRates(slow_ms=300),
        )
    )
    sim_url = await sim.start()
    services: list[ServiceProcess] = []
    try:
        token = await _seed(tmp, database_url, sim, sim_url)
        env = {
            "GATEWAY_DATABASE_URL": database_url, "GATEWAY_KEYS_DIR": str(tmp / "keys"),
            "GATEWAY_PORT": str(port), "GATEWAY_ALLOW_INSECURE_LOOPBACK": "1",
            "GATEWAY_PARTNER_CONCURRENCY": str(LIMIT), "GATEWAY_LOG_LEVEL": "warning", **broker,
        }  # fmt: skip
        for role in ("worker", "worker", "api"):
            own = {**env, "GATEWAY_OPS_PORT": str(free_port())}  # each process its own ops port
            service = ServiceProcess(own, role=role, log=tmp / f"gateway-{len(services)}.log")
            services.append(await asyncio.to_thread(service.start))
        await _submit_all(f"http://127.0.0.1:{port}", token)
        deadline = time.monotonic() + 120
        while len(sim.ledger.to_dict()["entries"]) < COUNT:
            assert time.monotonic() < deadline, "the envelopes were not all delivered"
            await asyncio.sleep(0.2)
    finally:
        for service in services:
            await asyncio.to_thread(service.stop)
        await sim.stop()
    return sim.peak_in_flight


async def test_two_embedded_workers_share_the_partner_limit(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gatehouse.db'}"
    peak = await _two_workers_against_one_partner(tmp_path, url, {})
    assert 2 <= peak <= LIMIT  # reached, never passed (two processes of 3 each would give 6)


async def test_two_rabbitmq_workers_share_the_partner_limit(
    tmp_path: Path, postgres_url: str, amqp_url: str
) -> None:
    prefix = unique_name("concurrency")
    broker = {"GATEWAY_BROKER_URL": amqp_url, "GATEWAY_BROKER_PREFIX": prefix}
    try:
        peak = await _two_workers_against_one_partner(tmp_path, postgres_url, broker)
    finally:
        partners = list(load_catalog(default_catalog_dir()).partners)
        await delete_topology(amqp_url, build_topology(prefix, partners))
    assert 2 <= peak <= LIMIT
