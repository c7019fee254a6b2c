"""The chaos rig: 2 API and 2 worker processes on PostgreSQL and RabbitMQ, each reached through
a proxy the test controls, a partner that misbehaves on command, a load generator that retries
with the same Idempotency-Key, and the one checker every case ends with."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from sqlalchemy import select

from agreements.loader import default_catalog_dir, load_catalog
from agreements.samples import adult_record
from gateway import audit
from gateway.application.catalog_apply import apply_catalog
from gateway.application.client_systems import add_client
from gateway.demo import catalog_with_endpoints
from gateway.queue.retry import RetryPolicy
from gateway.queue.topology import build_topology
from gateway.service import Gateway
from gateway.settings import load_settings
from gateway.store.database import Store
from gateway.store.dialects import DatabaseOptions
from gateway.store.tables import disclosures
from tests.chaos.partner import MisbehavingPartner, Mode
from tests.integration.rabbit_helpers import delete_topology
from tests.service_process import BIN, ServiceProcess, free_port
from tests.services import unique_name
from tests.tcp_proxy import TcpProxy

ACTOR = audit.Actor(audit.ActorKind.ADMIN, "chaos")
PARTNER = "medway-homecare"
AGREEMENT = "KM-DOM-006"
RETRY_DELAYS = "500ms,1s,1s,2s,2s"
MAX_ATTEMPTS = 8
WEBHOOK_TIMEOUT_S = 2.0
RECEIPT_DEADLINE = "PT3S"
TERMINAL = frozenset({"receipted", "failed"})
TABLE: list[dict[str, Any]] = []  # one row per case, printed at the end of the run (conftest)


@dataclass
class Tally:
    """What the callers were told."""

    accepted: dict[str, str] = field(default_factory=dict)  # Idempotency-Key -> disclosure id
    statuses: Counter[int] = field(default_factory=Counter)
    twice: list[str] = field(default_factory=list)  # keys answered with two different ids
    connection_errors: int = 0


@dataclass
class Rig:
    """Everything a chaos case drives."""

    tmp: Path
    database_url: str  # direct, for the checker
    env: dict[str, str]  # what the services see: through the proxies
    admin_env: dict[str, str]  # what gateway-admin sees: direct
    token: str
    db: TcpProxy
    broker: TcpProxy
    partner: MisbehavingPartner
    apis: list[ServiceProcess]
    workers: list[ServiceProcess]
    tally: Tally = field(default_factory=Tally)

    @property
    def api_urls(self) -> list[str]:
        """The two APIs' base URLs."""
        return [api.url for api in self.apis]

    async def restart(self, service: ServiceProcess) -> ServiceProcess:
        """kill -9 one process (unless it is dead already) and start a fresh one in its place
        (same ports, same log); returns once the fresh one is ready."""
        service.kill()
        fresh = ServiceProcess(service.env, role=service.role, log=service.log)
        group = self.apis if service in self.apis else self.workers
        group[group.index(service)] = fresh
        return await asyncio.to_thread(_ready, fresh)


def _ready(service: ServiceProcess) -> ServiceProcess:
    """Start, and wait until /readyz answers 200: a worker started while the broker is away
    exits (its supervisor starts it again), so a case's faults begin once all are connected."""
    service.start(60.0)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert service.proc is not None
        if service.proc.poll() is not None:
            raise RuntimeError(f"{service.log.name} exited: {service.log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(service.ops_url + "/readyz", timeout=3) as resp:  # noqa: S310
                if resp.status == 200:
                    return service
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{service.log.name} not ready in 60 s")


def _body(record: dict[str, Any] | None = None) -> bytes:
    return json.dumps({
        "agreement": AGREEMENT, "purpose": "direct_care",
        "subject": {"nhs_number": "9990000026"}, "record": record or adult_record(),
        "requested_by": {"user": "sw-1", "role": "care_manager"}, "reason": "chaos test",
    }).encode()  # fmt: skip


def large_record(size: int) -> dict[str, Any]:
    """An adult's record of about `size` bytes, its size in goals of long free text (each just
    under the dictionary's 10,000-character limit for one free-text field)."""
    text = ("Keep living at home with support from family and carers. " * 200)[:9_900]
    record = adult_record()
    record["goals"] = [{"description": text} for _ in range(max(1, size // 9_950))]
    return record


async def _seed(tmp: Path, database_url: str, partner: MisbehavingPartner) -> str:
    gateway = await Gateway.open(load_settings(database_url=database_url, keys_dir=tmp / "keys"))
    try:
        now = gateway.clock()
        catalog = load_catalog(_catalog(tmp, partner.url))
        await apply_catalog(gateway.store, catalog, actor=ACTOR, at=now)
        await partner.register(gateway.store, ACTOR, now)
        issued = await add_client(gateway.store, "chaos-load", [AGREEMENT], actor=ACTOR, at=now)
        return issued.token
    finally:
        await gateway.close()


def _catalog(tmp: Path, endpoint: str) -> Path:
    """The example catalog with the partner on loopback and a receipt owed within seconds, so a
    refused or missing receipt is chased (resent, then failed) within a case."""
    folder = catalog_with_endpoints(tmp, {PARTNER: endpoint})
    partners_file = folder / "partners.yaml"
    document = yaml.safe_load(partners_file.read_text())
    for partner in document["partners"]:
        if partner["id"] == PARTNER:
            partner["channel"]["receipt_deadline"] = RECEIPT_DEADLINE
    partners_file.write_text(yaml.safe_dump(document, sort_keys=False))
    return folder


def _through(url: str, port: int, proxy: TcpProxy) -> str:
    return url.replace(f"127.0.0.1:{port}", f"127.0.0.1:{proxy.port}")


@contextlib.asynccontextmanager
async def chaos_rig(
    tmp: Path, database_url: str, amqp_url: str, **settings: str
) -> AsyncIterator[Rig]:
    """Start the rig (`settings`: more GATEWAY_* variables for every process); on the way out
    stop everything and delete the broker topology."""
    prefix = unique_name("chaos")
    db = await TcpProxy("127.0.0.1", 5432).start()
    broker = await TcpProxy("127.0.0.1", 5672).start()
    ports = [free_port(), free_port()]
    partner = MisbehavingPartner(
        PARTNER,
        f"http://127.0.0.1:{ports[0]}/.well-known/jwks.json",
        hold_s=WEBHOOK_TIMEOUT_S + 1,
        slow_s=WEBHOOK_TIMEOUT_S / 2,
    )
    await partner.start()
    partner.receipts_url = f"http://127.0.0.1:{ports[1]}/v1/receipts"
    services: list[ServiceProcess] = []
    rig: Rig | None = None
    try:
        token = await _seed(tmp, database_url, partner)
        common = {
            "GATEWAY_KEYS_DIR": str(tmp / "keys"), "GATEWAY_ALLOW_INSECURE_LOOPBACK": "1",
            "GATEWAY_BROKER_PREFIX": prefix, "GATEWAY_RETRY_DELAYS": RETRY_DELAYS,
            "GATEWAY_RETRY_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
            "GATEWAY_WEBHOOK_TOTAL_TIMEOUT": str(WEBHOOK_TIMEOUT_S),
            "GATEWAY_RECEIPT_SCAN_SECONDS": "1",
            "GATEWAY_LOG_LEVEL": "warning", "GATEWAY_LOG_FORMAT": "json", **settings,
        }  # fmt: skip
        env = {
            **common,
            "GATEWAY_DATABASE_URL": _through(database_url, 5432, db),
            "GATEWAY_BROKER_URL": _through(amqp_url, 5672, broker).rstrip("/")
            + "/?reconnect_interval=0.5",
        }
        admin_env = {**common, "GATEWAY_DATABASE_URL": database_url, "GATEWAY_BROKER_URL": amqp_url}
        apis = [
            ServiceProcess(
                {**env, "GATEWAY_PORT": str(port), "GATEWAY_OPS_PORT": str(free_port())},
                role="api",
                log=tmp / f"api-{i}.log",
            )
            for i, port in enumerate(ports)
        ]
        workers = [
            ServiceProcess(
                {**env, "GATEWAY_OPS_PORT": str(free_port())},
                role="worker",
                log=tmp / f"worker-{i}.log",
            )
            for i in range(2)
        ]
        services = [*apis, *workers]
        rig = Rig(tmp, database_url, env, admin_env, token, db, broker, partner, apis, workers)
        await asyncio.gather(*(asyncio.to_thread(_ready, s) for s in services))
        yield rig
    finally:
        # rig.apis and rig.workers hold the processes started in place of killed ones.
        for service in [*rig.apis, *rig.workers] if rig is not None else services:
            await asyncio.to_thread(service.stop, 20.0)
        await partner.stop()
        await db.close()
        await broker.close()
        partners = list(load_catalog(default_catalog_dir()).partners)
        retry = RetryPolicy.parse(RETRY_DELAYS, MAX_ATTEMPTS)
        await delete_topology(amqp_url, build_topology(prefix, partners, retry))


# -- the load generator ------------------------------------------------------------------------
async def _submit(
    rig: Rig, session: aiohttp.ClientSession, key: str, turn: int, body: bytes
) -> None:
    """Submit once: on no answer, a 503 or a 500, ask again with the same Idempotency-Key."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        url = rig.api_urls[turn % len(rig.api_urls)]
        turn += 1
        try:
            async with session.post(
                f"{url}/v1/disclosures",
                data=io.BytesIO(body),  # aiohttp streams a file-like body, bytes in one write
                headers={"Idempotency-Key": key, "Content-Type": "application/json"},
            ) as resp:
                rig.tally.statuses[resp.status] += 1
                if resp.status == 202:
                    given = (await resp.json())["id"]
                    if rig.tally.accepted.setdefault(key, given) != given:
                        rig.tally.twice.append(key)
                    return
                if resp.status not in (429, 500, 503):
                    return  # a refusal: counted, not retried
        except (TimeoutError, aiohttp.ClientError):
            rig.tally.connection_errors += 1
        await asyncio.sleep(0.2)
    raise AssertionError(f"no answer for {key} in two minutes")


async def load(
    rig: Rig,
    count: int,
    concurrency: int = 8,
    pause: float = 0.0,
    record: dict[str, Any] | None = None,
) -> None:
    """Submit `count` disclosures, `concurrency` at a time, each under its own key; each caller
    waits `pause` seconds between its submissions (a steady stream rather than a burst)."""
    headers = {"Authorization": f"Bearer {rig.token}"}
    body = _body(record)
    timeout = aiohttp.ClientTimeout(total=10 if record is None else 60)
    keys = [unique_name("chaos-key") for _ in range(count)]
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:

        async def caller(turn: int) -> None:
            while keys:
                await _submit(rig, session, keys.pop(), turn, body)
                await asyncio.sleep(pause)

        await asyncio.gather(*(caller(i) for i in range(concurrency)))


async def until_accepted(rig: Rig, count: int, within: float = 60.0) -> None:
    """Wait until the callers have been told `count` acceptances."""
    deadline = time.monotonic() + within
    while len(rig.tally.accepted) < count:
        assert time.monotonic() < deadline, f"only {len(rig.tally.accepted)} accepted"
        await asyncio.sleep(0.05)


# -- the checker -------------------------------------------------------------------------------
async def statuses_of(database_url: str) -> dict[str, str]:
    """Every disclosure's status, read directly from the database."""
    store = await Store.open(database_url, DatabaseOptions(pool_size=1))
    try:
        async with store.read() as conn:
            rows = await conn.execute(select(disclosures.c.id, disclosures.c.status))
            return {row.id: row.status for row in rows}
    finally:
        await store.close()


async def admin(rig: Rig, *args: str) -> tuple[int, Any]:
    """Run `gateway-admin ... --json` as an operator would: its exit code and its answer."""
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "gateway-admin"), *args, "--json",
        env={**os.environ, **rig.admin_env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    try:
        return proc.returncode, json.loads(out)
    except ValueError:
        shown = f"{out.decode()[:600]} {err.decode()[-1000:]}"
        raise AssertionError(f"gateway-admin {args}: {shown}") from None


async def check(rig: Rig, case: str, within: float = 60.0) -> dict[str, Any]:
    """Lift every fault, let the gateway finish, then assert the invariants; returns the row."""
    rig.db.restore()
    rig.broker.restore()
    rig.partner.mode = Mode.OK
    await rig.partner.release_withheld()
    accepted = set(rig.tally.accepted.values())
    deadline = time.monotonic() + within
    while True:
        statuses = await statuses_of(rig.database_url)
        stuck = {i for i in accepted if statuses.get(i) not in TERMINAL}
        if not stuck or time.monotonic() > deadline:
            break
        await rig.partner.release_withheld()
        await asyncio.sleep(0.5)
    failed = {i for i in accepted if statuses.get(i) == "failed"}
    ledger = {e.message_id: e for e in rig.partner.sim.ledger}
    row = {
        "case": case,
        "accepted": len(accepted),
        "receipted": sum(statuses.get(i) == "receipted" for i in accepted),
        "failed": len(failed),
        "stuck": len(stuck),
        "duplicates": rig.partner.sim.ledger.duplicates,
        "http_500": rig.tally.statuses[500],
        "at": datetime.now(UTC).strftime("%H:%M:%S"),
    }
    TABLE.append(row)
    (listed_rc, listed), (fix_rc, fixed), (audit_rc, audited) = await asyncio.gather(
        admin(rig, "deadletters", "list"),
        admin(rig, "deadletters", "reconcile"),
        admin(rig, "audit", "verify"),
    )
    assert not stuck, f"stuck: {Counter(statuses.get(i, 'missing') for i in stuck)}; {_logs(rig)}"
    assert set(rig.partner.late_receipts) <= {200}, rig.partner.late_receipts
    assert rig.tally.statuses[500] == 0, "a 500 reached a caller"
    assert not rig.tally.twice, "one Idempotency-Key was given two disclosures"
    assert set(statuses) == accepted, "the database holds a disclosure no caller was given"
    assert len(accepted) == len(rig.tally.accepted), "two keys were given the same disclosure"
    listed_ids = {d["disclosure_id"] for d in listed["dead_letters"]}
    assert listed_rc == 0
    assert failed <= listed_ids, "a failed disclosure is not in `deadletters list`"
    assert fix_rc == 0
    assert (fixed["failed"], fixed["requeued"]) == ([], []), f"broker and database differ: {fixed}"
    assert audit_rc == 0, audited
    for message_id, entry in ledger.items():
        assert message_id in accepted, "the partner got an envelope for an unknown disclosure"
        assert len(entry.digests) == 1, "a duplicate at the partner carried other bytes"
    assert {i for i in accepted if statuses[i] == "receipted"} <= set(ledger)
    return row


def _logs(rig: Rig) -> str:
    """The services' warnings and errors, counted by event (pytest's tmp folders do not last)."""
    lines = []
    for service in [*rig.apis, *rig.workers]:
        events: Counter[str] = Counter()
        for line in service.log.read_text().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                events[line[:120]] += 1
                continue
            if entry.get("level") in ("warning", "error", "critical"):
                events[f"{entry['level']} {str(entry.get('event'))[:120]}"] += 1
        lines.append(f"{service.log.name}: {dict(events.most_common(12))}")
    return "\n".join(lines)
