"""End-to-end delivery: disclosures receipted per second through the DeliveryService, on RabbitMQ
and on the embedded queue, against a bare baseline measured in the same run.

Run: .venv/bin/python benchmarks/bench_delivery.py [--count 2000] [--window 64] [--postgres]

One partner simulator runs as its own process (`gateway partner-sim`, synchronous receipts).
Each run seals and accepts disclosures (one database transaction each: row, event, outbox row,
audit entry) while at most `--window` are awaiting their receipt, and measures accept-to-receipt
latency. The bare baseline does the same seal, publish (RabbitMQ, confirms), consume, POST and
receipt verification with no policy, no database and no audit. Prints figures, with this
process's CPU time per delivery (it moves less than the rate when the machine is shared); asserts
nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict

import aio_pika
import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from setup_support import fresh_postgres

from adapters.webhook import WebhookChannel
from agreements.loader import default_catalog_dir, load_catalog
from gateway import audit
from gateway.application.receipt_intake import ReceiptIntake
from gateway.delivery import DeliveryService
from gateway.keys import CouncilKeyring
from gateway.logging import configure_logging
from gateway.metrics import Metrics
from gateway.partner_keys import PartnerKey
from gateway.policy_cache import PolicyCache
from gateway.receipts import verify_receipt
from gateway.sealing import EnvelopeAgreement, EnvelopeClaims, SealedEnvelope, seal
from gateway.settings import load_settings
from gateway.store import agreements_repo, disclosures, partners_repo
from gateway.store.agreements_repo import StoredAgreement
from gateway.store.database import Store
from gateway.store.disclosure_model import NewDisclosure, Status, SubjectIndexes
from gateway.store.group_commit import SetWise
from gateway.store.receipt_ledger import ReceiptLedger
from gateway.store.unit_of_work import Connection

COUNCIL, PARTNER = "medway-council", "bench-partner"
AMQP = os.environ.get("GATEHOUSE_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
CLIENT = audit.Actor(audit.ActorKind.CLIENT, "bench")
PREFETCH = 16


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Partner:
    """The simulator process and what the council needs to know of it."""

    url: str
    enc: PartnerKey
    sig: PartnerKey
    jwks_runner: web.AppRunner
    process: subprocess.Popen[bytes]


@dataclass
class Figures:
    """Completed disclosures and their latencies."""

    name: str
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    cpu: float = 0.0  # this process's CPU seconds: steadier than the rate on a shared machine

    @property
    def cpu_ms(self) -> float:
        return self.cpu * 1000 / len(self.latencies) if self.latencies else 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def line(self) -> str:
        ms = sorted(x * 1000 for x in self.latencies)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))] if ms else 0.0
        p50 = statistics.median(ms) if ms else 0.0
        return (f"{self.name:<38} {len(ms):>6} in {self.elapsed:6.2f}s = {self.rate:7.1f}/s"
                f"   p50 {p50:7.1f} ms   p99 {p99:7.1f} ms"
                f"   CPU {self.cpu_ms:5.2f} ms each")  # fmt: skip


def claims(message_id: str) -> EnvelopeClaims:
    """A short synthetic record (~1 KB envelope)."""
    return EnvelopeClaims(
        iss=COUNCIL, aud=PARTNER, jti=message_id, iat=now(),
        agreement=EnvelopeAgreement("BENCH-DOM", 2), purpose="direct_care",
        subject={"local_id": "MC-A-SYN-0001"},
        data={"identity": {"name": "Ada Testperson", "date_of_birth": "1950-01-01"},
              "needs": {"personal_care": "synthetic text " * 10}},
        retain_until=date(2030, 1, 1), onward_sharing="prohibited",
    )  # fmt: skip


async def start_partner(workdir: Path, keyring: CouncilKeyring) -> Partner:
    """Serve the council JWKS, start `gateway partner-sim` in its own process, read its keys."""
    app = web.Application()

    async def jwks(_: web.Request) -> web.Response:
        return web.json_response(keyring.jwks(now()))

    app.router.add_get("/.well-known/jwks.json", jwks)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    jwks_port = runner.addresses[0][1]
    port = 20000 + os.getpid() % 20000
    gateway_bin = str(Path(sys.executable).with_name("gateway"))
    process = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is measured
        [gateway_bin, "partner-sim", "--port", str(port), "--keys", str(workdir / "sim"),
         "--partner-id", PARTNER, "--council-id", COUNCIL,
         "--council-jwks", f"http://127.0.0.1:{jwks_port}/.well-known/jwks.json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(f"{url}/healthz") as reply:
                    if reply.status == 200:
                        break
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
        async with session.get(f"{url}/keys") as reply:
            keys = await reply.json()
    enc = PartnerKey.from_jwk(PARTNER, keys["enc"], use="enc")
    sig = PartnerKey.from_jwk(PARTNER, keys["sig"], use="sig")
    return Partner(f"{url}/in", enc, sig, runner, process)


async def bare(partner: Partner, keyring: CouncilKeyring, count: int, window: int) -> Figures:
    """Seal, publish with confirms, consume, POST, verify the receipt: nothing else."""
    figures, slots = Figures("bare baseline (RabbitMQ)"), asyncio.Semaphore(window)
    queue_name = f"ghbench.bare.{uuid.uuid4().hex[:8]}"
    started_at: dict[str, float] = {}
    done = asyncio.Event()
    connection = await aio_pika.connect(AMQP)
    session = aiohttp.ClientSession()
    try:
        publisher = await connection.channel(publisher_confirms=True)
        consumer = await connection.channel()
        await consumer.set_qos(prefetch_count=PREFETCH)
        queue = await consumer.declare_queue(
            queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with session.post(
                partner.url, data=message.body, headers={"Content-Type": "application/jose"}
            ) as reply:
                token = await reply.read()  # fmt: skip
            verify_receipt(
                token, partner_keys=[partner.sig], partner_id=PARTNER, council_id=COUNCIL,
                message_id=message.message_id or "", expected_digest=str(message.headers["d"]),
                now=now(),
            )  # fmt: skip
            await message.ack()
            figures.latencies.append(time.perf_counter() - started_at[message.message_id or ""])
            slots.release()
            if len(figures.latencies) == count:
                done.set()

        await queue.consume(on_message)
        signer = keyring.active_signer(now())

        async def publish(sealed: SealedEnvelope, id_: str) -> None:
            await publisher.default_exchange.publish(
                aio_pika.Message(sealed.body, message_id=id_, headers={"d": sealed.digest},
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue_name,
            )  # fmt: skip

        begin, cpu_begin = time.perf_counter(), time.process_time()
        tasks = []
        for _ in range(count):
            await slots.acquire()
            id_ = str(uuid.uuid4())
            started_at[id_] = time.perf_counter()
            tasks.append(asyncio.create_task(publish(seal(claims(id_), signer, partner.enc), id_)))
        await asyncio.gather(*tasks)
        await asyncio.wait_for(done.wait(), 300)
        figures.elapsed = time.perf_counter() - begin
        figures.cpu = time.process_time() - cpu_begin
        await consumer.queue_delete(queue_name)
    finally:
        await session.close()
        await connection.close()
    return figures


class TimedIntake(ReceiptIntake):
    """The real receipt intake, telling the benchmark when a disclosure became receipted."""

    on_receipted: Callable[[str], None] = staticmethod(lambda _id: None)

    async def accept(self, token: bytes, *, via: str = "api", known: Any = None) -> Any:
        return self._timed(await super().accept(token, via=via, known=known))

    async def accept_sync(self, token: bytes, *, sent: Any, digest: str, via: str) -> Any:
        return self._timed(await super().accept_sync(token, sent=sent, digest=digest, via=via))

    def _timed(self, result: Any) -> Any:
        if result.status == Status.RECEIPTED:
            self.on_receipted(result.message_id)
        return result


async def through_service(
    name: str, partner: Partner, *, keyring: CouncilKeyring, database_url: str, broker_url: str,
    count: int, window: int, workdir: Path,
) -> Figures:  # fmt: skip
    """Accept sealed disclosures into the store and time them to their verified receipt."""
    figures, slots = Figures(name), asyncio.Semaphore(window)
    settings = load_settings(
        database_url=database_url, broker_url=broker_url,
        broker_prefix=f"ghbench.{uuid.uuid4().hex[:8]}", keys_dir=workdir / "keys",
        allow_insecure_loopback=True, org_id=COUNCIL, partner_concurrency=PREFETCH,
    )  # fmt: skip
    store = await Store.open(database_url)
    await store.upgrade()
    await register(store, partner)
    policy = PolicyCache(store, interval=3600)
    await policy.refresh()
    metrics, started_at, done = Metrics(), dict[str, float](), asyncio.Event()
    intake = TimedIntake(
        records=ReceiptLedger(store), policy=policy, org_id=COUNCIL, metrics=metrics, clock=now
    )

    def receipted(id_: str) -> None:
        figures.latencies.append(time.perf_counter() - started_at[id_])
        slots.release()
        if len(figures.latencies) == count:
            done.set()

    intake.on_receipted = receipted
    channel = WebhookChannel(allow_insecure_loopback=True)
    service = DeliveryService(
        settings=settings, store=store, policy=policy, intake=intake, metrics=metrics,
        channels={"webhook": channel}, clock=now,
    )  # fmt: skip
    await service.start()
    signer = keyring.active_signer(now())

    async def accept(id_: str) -> None:  # as the API would: each request its own task
        sealed = seal(claims(id_), signer, partner.enc)
        new = new_disclosure(id_, sealed.encryption_kid)
        accepted = disclosures.AcceptedDisclosure(new, sealed.body, sealed.digest, CLIENT, now())
        await store.write(
            SetWise(disclosures.record_accepted_setwise, accepted)
        )  # as submitting does
        service.notify()

    try:
        begin, cpu_begin = time.perf_counter(), time.process_time()
        tasks = []
        for _ in range(count):
            await slots.acquire()
            id_ = str(uuid.uuid4())
            started_at[id_] = time.perf_counter()
            tasks.append(asyncio.create_task(accept(id_)))
        await asyncio.gather(*tasks)
        await asyncio.wait_for(done.wait(), 600)
        figures.elapsed = time.perf_counter() - begin
        figures.cpu = time.process_time() - cpu_begin
    finally:
        topology = service.transport.topology if service.transport else None
        await service.stop(grace=5)
        await channel.close()
        await store.close()
        if topology is not None:
            await drop_topology(topology)
    return figures


def new_disclosure(id_: str, kid: str) -> NewDisclosure:
    return NewDisclosure(
        id=id_, client=CLIENT.name, agreement_id="BENCH-DOM", agreement_version=2,
        partner_id=PARTNER, purpose="direct_care", lawful_basis="UK GDPR 6(1)(e), 9(2)(h)",
        subject=SubjectIndexes(local_id="blind-index-synthetic"), requested_by_user="sw-0001",
        requested_by_role="social_worker", reason="benchmark",
        retain_until=now() + timedelta(days=365), fields_sent=("identity.name",),
        decision_reasons=("allowed",), key_ids=(kid,),
    )  # fmt: skip


async def register(store: Store, partner: Partner) -> None:
    """The partner, its keys and an agreement (a copy of the catalog's KM-DOM-006)."""
    at = now()
    template = load_catalog(default_catalog_dir()).agreements["KM-DOM-006"]
    agreement = template.model_copy(update={"id": "BENCH-DOM", "partner": PARTNER})

    async def work(conn: Connection) -> None:
        await partners_repo.save_partner(
            conn,
            partners_repo.StoredPartner(
                PARTNER,
                "Benchmark partner",
                "care_provider",
                "webhook",
                {"endpoint": partner.url},
            ),
            at=at,
        )
        for key in (partner.enc, partner.sig):
            await partners_repo.add_key(
                conn,
                partners_repo.StoredPartnerKey(
                    partner_id=PARTNER,
                    kid=key.kid,
                    use=key.use,
                    alg=key.alg,
                    jwk=dict(key.jwk),
                    not_before=at - timedelta(days=1),
                ),
                at=at,
            )
        await agreements_repo.save(
            conn,
            StoredAgreement(
                id=agreement.id,
                version=agreement.version,
                status="active",
                partner_id=PARTNER,
                effective_from=agreement.effective_from,
                effective_to=agreement.effective_to,
                review_due=agreement.review_due,
                document=agreement.to_document(),
                content_hash=agreement.content_hash(),
                applied_by="bench",
                applied_at=at,
            ),
        )

    await store.write(work)


async def drop_topology(topology: Any) -> None:
    connection = await aio_pika.connect(AMQP)
    try:
        channel = await connection.channel()
        for queue in topology.queues():
            await channel.queue_delete(queue.name)
        for exchange in topology.exchanges():
            await channel.exchange_delete(exchange.name)
    finally:
        await connection.close()


class Common(TypedDict):
    """What every run through the service shares."""

    keyring: CouncilKeyring
    count: int
    window: int
    workdir: Path


async def main(count: int, window: int, postgres: bool, only: str | None) -> None:
    configure_logging(
        "console", os.environ.get("BENCH_LOG", "warning")
    )  # per-receipt info lines would be a logging benchmark
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        keyring = CouncilKeyring(workdir / "council")
        keyring.generate("ES256", now() - timedelta(minutes=1))
        partner = await start_partner(workdir, keyring)
        results: list[Figures] = []
        try:
            results.append(await bare(partner, keyring, count, window))

            def sqlite(name: str) -> str:
                return f"sqlite+aiosqlite:///{workdir / name}.db"

            common = Common(keyring=keyring, count=count, window=window, workdir=workdir)
            if only in (None, "embedded"):
                results.append(await through_service(
                    "DeliveryService embedded (SQLite)", partner, database_url=sqlite("embedded"),
                    broker_url="", **common))  # fmt: skip
            if only in (None, "rabbit"):
                results.append(await through_service(
                    "DeliveryService RabbitMQ (SQLite)", partner, database_url=sqlite("rabbit"),
                    broker_url=AMQP, **common))  # fmt: skip
            if postgres or only == "postgres":
                url, drop = await fresh_postgres()
                try:
                    results.append(await through_service(
                        "DeliveryService RabbitMQ (PostgreSQL)", partner, database_url=url,
                        broker_url=AMQP, **common))  # fmt: skip
                finally:
                    await drop()
        finally:
            partner.process.terminate()
            partner.process.wait(10)
            await partner.jwks_runner.cleanup()
    limit = load_settings().partner_concurrency
    print(f"{count} disclosures, at most {window} awaiting a receipt, at most {PREFETCH} requests "
          f"in flight to the partner (baseline: prefetch {PREFETCH}; service: partner "
          f"concurrency {PREFETCH}, prefetch {limit}), one partner simulator process, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    for figures in results:
        print(figures.line())
    base = results[0]
    for figures in results[1:]:
        share = base.cpu_ms / figures.cpu_ms if figures.cpu_ms else 0.0
        print(f"{figures.name:<38} = {figures.rate / base.rate:6.1%} of the bare baseline"
              f" (the baseline's CPU per delivery is {share:6.1%} of this)")  # fmt: skip
    print(json.dumps({f.name: round(f.rate, 1) for f in results}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--postgres", action="store_true", help="also RabbitMQ + PostgreSQL")
    parser.add_argument(
        "--only", choices=("embedded", "rabbit", "postgres"), help="the baseline and this one"
    )
    args = parser.parse_args()
    asyncio.run(main(args.count, args.window, args.postgres, args.only))
