"""A delivery rig for tests and the benchmark: a store with partners, agreements and keys, real
partner simulators on loopback, sealed envelopes in the outbox, and the DeliveryService.

Only synthetic data: the records are a handful of made-up fields about "Ada Testperson".
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from adapters.webhook import WebhookChannel
from agreements.loader import default_catalog_dir, load_catalog
from agreements.model import Agreement, RetryOverride
from gateway import audit
from gateway.application.channel import Channel
from gateway.application.receipt_intake import ReceiptIntake
from gateway.catalog_sync import agreement_record
from gateway.delivery import DeliveryOptions, DeliveryService
from gateway.errors import GatewayError
from gateway.keys import CouncilKeyring
from gateway.metrics import Metrics
from gateway.partner_keys import PartnerKey
from gateway.partner_sim import FaultRates, PartnerConfig, PartnerSimulator, ReceiptMode
from gateway.policy_cache import PolicyCache
from gateway.sealing import EnvelopeAgreement, EnvelopeClaims, seal
from gateway.settings import Settings, load_settings
from gateway.store import agreements_repo, disclosures, partners_repo
from gateway.store.database import Store
from gateway.store.disclosure_model import DisclosureEvent, NewDisclosure, Status, SubjectIndexes
from gateway.store.receipt_ledger import ReceiptLedger
from gateway.store.unit_of_work import Connection

COUNCIL = "medway-council"
CLIENT = audit.Actor(audit.ActorKind.CLIENT, "mosaic-adults")
TEMPLATE = "KM-DOM-006"  # a webhook agreement with a care provider


def utc_now() -> datetime:
    return datetime.now(UTC)


def template_agreement() -> Agreement:
    """The catalog's domiciliary care agreement, to copy for test partners."""
    return load_catalog(default_catalog_dir()).agreements[TEMPLATE]


TEMPLATE_AGREEMENT = template_agreement()


@dataclass
class Rig:
    """Everything a delivery test drives; build with `await Rig.open(...)`."""

    settings: Settings
    store: Store
    keyring: CouncilKeyring
    policy: PolicyCache
    intake: ReceiptIntake
    metrics: Metrics
    channels: dict[str, Channel]
    options: DeliveryOptions
    sims: dict[str, PartnerSimulator] = field(default_factory=dict)
    agreements: dict[str, str] = field(default_factory=dict)  # partner -> agreement id
    sealed: dict[str, bytes] = field(default_factory=dict)  # disclosure id -> envelope
    service: DeliveryService | None = None
    receipts_url: str | None = None
    _runner: web.AppRunner | None = None

    @classmethod
    async def open(
        cls,
        tmp_path: Path,
        *,
        database_url: str,
        broker_url: str = "",
        broker_prefix: str = "gatehouse",
        retry_delays: str = "50ms,100ms,200ms",
        retry_max_attempts: int = 4,
        options: DeliveryOptions | None = None,
        webhook_timeout: float = 2.0,
        partner_concurrency: int = 16,
    ) -> Rig:
        settings = load_settings(
            database_url=database_url, broker_url=broker_url, broker_prefix=broker_prefix,
            retry_delays=retry_delays, retry_max_attempts=retry_max_attempts,
            keys_dir=tmp_path / "keys", allow_insecure_loopback=True, org_id=COUNCIL,
            partner_concurrency=partner_concurrency,
        )  # fmt: skip
        store = await Store.open(database_url)
        await store.upgrade()
        keyring = CouncilKeyring(tmp_path / "council-keys")
        keyring.generate("ES256", utc_now() - timedelta(minutes=1))
        policy = PolicyCache(store, interval=3600)
        metrics = Metrics()
        intake = ReceiptIntake(
            records=ReceiptLedger(store),
            policy=policy,
            org_id=COUNCIL,
            metrics=metrics,
            clock=utc_now,
        )
        channels: dict[str, Channel] = {
            "webhook": WebhookChannel(
                allow_insecure_loopback=True, total_timeout=webhook_timeout, connect_timeout=1.0
            )
        }
        fast = DeliveryOptions(
            poll_interval=0.02, hold_recheck=timedelta(milliseconds=200),
            deadline_interval=0.1, relay_lease=timedelta(seconds=5),
        )  # fmt: skip
        return cls(settings, store, keyring, policy, intake, metrics, channels, options or fast)

    # -- partners and agreements -------------------------------------------------------------
    async def add_partner(
        self,
        partner_id: str,
        *,
        receipts: ReceiptMode = ReceiptMode.SYNC,
        faults: FaultRates | None = None,
        retry: RetryOverride | None = None,
        receipt_deadline: timedelta | None = None,
        slow_ms: int = 0,
    ) -> PartnerSimulator:
        """A running simulated partner with its keys, partner row and agreement stored."""
        now = utc_now()
        config = PartnerConfig(
            partner_id=partner_id, council_id=COUNCIL, council_jwks=self.keyring.jwks(now),
            receipts=receipts, faults=faults or FaultRates(slow_ms=slow_ms), seed=7,
            timeout_hold_s=5.0,
            async_receipt_url=await self.receipts_endpoint(),
        )  # fmt: skip
        sim = PartnerSimulator(config)
        base = await sim.start()
        self.sims[partner_id] = sim
        enc, sig = sim.public_keys()
        endpoint = {"endpoint": f"{base}/in"}
        partner = partners_repo.StoredPartner(
            partner_id, f"Test partner {partner_id}", "care_provider", "webhook", endpoint
        )
        keys = [
            PartnerKey.from_jwk(partner_id, jwk, use=use)  # type: ignore[arg-type]
            for jwk, use in ((enc, "enc"), (sig, "sig"))
        ]

        async def save_partner(conn: Connection) -> None:
            await partners_repo.save_partner(conn, partner, at=now)
            for key in keys:
                stored = partners_repo.StoredPartnerKey(
                    partner_id, key.kid, key.use, key.alg, dict(key.jwk), now - timedelta(days=1)
                )
                await partners_repo.add_key(conn, stored, at=now)

        await self.store.write(save_partner)
        agreement = TEMPLATE_AGREEMENT.model_copy(
            update={
                "id": f"TEST-{partner_id}", "partner": partner_id, "retry": retry,
                "receipt_deadline": receipt_deadline,
            }
        )  # fmt: skip
        await self.save_agreement(agreement)
        self.agreements[partner_id] = agreement.id
        return sim

    async def save_agreement(self, agreement: Agreement, status: str = "active") -> None:
        """Store an agreement version as an administrator would apply it."""
        stored = replace(
            agreement_record(agreement, applied_by="test", at=utc_now()), status=status
        )
        await self.store.write(lambda conn: agreements_repo.save(conn, stored))
        await self.policy.refresh()

    async def set_agreement_status(self, partner_id: str, status: str) -> None:
        """Suspend, resume or terminate a partner's agreement (live at the next refresh)."""
        agreement_id = self.agreements[partner_id]
        await self.store.write(
            lambda conn: agreements_repo.set_status(
                conn, agreement_id, TEMPLATE_AGREEMENT.version, status
            )
        )
        await self.policy.refresh()

    async def receipts_endpoint(self) -> str:
        """The gateway's POST /v1/receipts, played by a tiny app that calls the receipt intake."""
        if self.receipts_url is not None:
            return self.receipts_url

        async def receive(request: web.Request) -> web.Response:
            try:
                accepted = await self.intake.accept(await request.read(), via="api")
            except GatewayError as exc:
                return web.json_response({"code": exc.code}, status=400)
            return web.json_response({"status": str(accepted.status)})

        app = web.Application()
        app.router.add_post("/v1/receipts", receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.receipts_url = f"http://{host}:{port}/v1/receipts"
        return self.receipts_url

    # -- disclosures -------------------------------------------------------------------------
    def seal_for(self, partner_id: str, message_id: str, now: datetime) -> tuple[bytes, str, str]:
        """A sealed envelope (bytes, digest, encryption kid) for the partner's current key."""
        enc, _ = self.sims[partner_id].public_keys()
        recipient = PartnerKey.from_jwk(partner_id, enc, use="enc")
        claims = EnvelopeClaims(
            iss=COUNCIL, aud=partner_id, jti=message_id, iat=now,
            agreement=EnvelopeAgreement(self.agreements[partner_id], TEMPLATE_AGREEMENT.version),
            purpose="direct_care", subject={"local_id": "MC-A-SYN-0001"},
            data={"identity": {"name": "Ada Testperson"}}, retain_until=date(2030, 1, 1),
            onward_sharing="prohibited",
        )  # fmt: skip
        sealed = seal(claims, self.keyring.active_signer(now), recipient)
        return sealed.body, sealed.digest, sealed.encryption_kid

    async def submit(
        self, partner_id: str, count: int = 1, *, agreement_id: str | None = None
    ) -> list[str]:
        """Accept `count` sealed disclosures for the partner (rows, events, outbox, audit)."""
        now = utc_now()
        ids = []
        for _ in range(count):
            id_ = str(uuid.uuid4())
            body, digest, kid = self.seal_for(partner_id, id_, now)
            new = NewDisclosure(
                id=id_, client=CLIENT.name,
                agreement_id=agreement_id or self.agreements[partner_id],
                agreement_version=TEMPLATE_AGREEMENT.version, partner_id=partner_id,
                purpose="direct_care", lawful_basis="UK GDPR 6(1)(e), 9(2)(h)",
                subject=SubjectIndexes(local_id="blind-index-synthetic"),
                requested_by_user="sw-0001", requested_by_role="social_worker",
                reason="care package start", retain_until=now + timedelta(days=365),
                fields_sent=("identity.name",), decision_reasons=("allowed",), key_ids=(kid,),
            )  # fmt: skip
            await self.store.write(
                functools.partial(
                    disclosures.record_accepted,
                    new=new,
                    envelope=body,
                    digest=digest,
                    actor=CLIENT,
                    at=now,
                )
            )
            self.sealed[id_] = body
            ids.append(id_)
        if self.service is not None:
            self.service.notify()
        return ids

    # -- the engine --------------------------------------------------------------------------
    async def start(self) -> DeliveryService:
        """Start the delivery engine on this rig."""
        self.service = DeliveryService(
            settings=self.settings, store=self.store, policy=self.policy, intake=self.intake,
            metrics=self.metrics, channels=self.channels, options=self.options,
            owner=f"test-{uuid.uuid4().hex[:6]}",
        )  # fmt: skip
        await self.service.start()
        return self.service

    async def close(self) -> None:
        """Stop everything the rig started."""
        if self.service is not None:
            await self.service.stop(grace=2.0)
        for sim in self.sims.values():
            await sim.stop()
        for channel in self.channels.values():
            await channel.close()
        if self._runner is not None:
            await self._runner.cleanup()
        await self.store.close()

    # -- looking -----------------------------------------------------------------------------
    async def status(self, id_: str) -> Status:
        async with self.store.read() as conn:
            found = await disclosures.get(conn, id_)
        assert found is not None
        return found.status

    async def timeline(self, id_: str) -> list[DisclosureEvent]:
        async with self.store.read() as conn:
            return await disclosures.timeline(conn, id_)

    async def statuses(self, ids: list[str]) -> dict[str, Status]:
        return {i: await self.status(i) for i in ids}

    async def wait_for(
        self, ids: list[str], status: Status, within: float = 20.0
    ) -> dict[str, Status]:
        """Poll until every disclosure has `status` (fails with what they have instead)."""
        deadline = time.monotonic() + within
        while True:
            now = await self.statuses(ids)
            if all(s is status for s in now.values()):
                return now
            if time.monotonic() > deadline:
                raise AssertionError(f"not all {status}: {sorted(set(map(str, now.values())))}")
            await asyncio.sleep(0.02)


async def wait_until(predicate: Callable[[], Any], within: float = 20.0) -> None:
    """Poll an (async or plain) predicate with a deadline."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.02)
