"""The one place where the service is wired: settings in, a running Gateway out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aio_pika
import aio_pika.exceptions
import structlog
from aio_pika.connection import make_url
from aiohttp import web
from sqlalchemy import func, select

from gateway import audit
from gateway.clients import Client
from gateway.disclosure_view import disclosure_view
from gateway.group_commit import GroupCommit
from gateway.http.schemas import DisclosureView
from gateway.keys import CouncilKeyring, KeyringCheckpointSigner
from gateway.metrics import Metrics
from gateway.pipeline import Pipeline
from gateway.policy_cache import PolicyCache
from gateway.protection import Protection
from gateway.receipt_intake import ReceiptIntake
from gateway.settings import Settings
from gateway.store import partners_repo
from gateway.store.database import Store
from gateway.store.tables import outbox

log = structlog.get_logger("gateway.service")
DEFAULT_SIGNING_ALG = "ES256"


def utc_now() -> datetime:
    """The service clock (tests pass their own)."""
    return datetime.now(UTC)


async def ensure_council_key(
    store: Store, keyring: CouncilKeyring, now: datetime, alg: str = DEFAULT_SIGNING_ALG
) -> None:
    """First start: make a signing key; always mirror the published keys into the store."""
    if not any(key.status == "active" for key in keyring.list()):
        key = keyring.generate(alg, now)
        await audit.record(
            store, audit.SYSTEM, "council_key.generated", at=now, targets={"kid": key.kid},
            details={"alg": alg},
        )  # fmt: skip
    published = keyring.jwks(now)["keys"]
    async with store.transaction() as conn:
        for jwk in published:
            await partners_repo.mirror_council_key(
                conn, kid=jwk["kid"], alg=jwk["alg"], public_jwk=jwk, status="active", at=now
            )


class Gateway:
    """Everything a gateway process holds: store, policy, keys, use cases, metrics."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Callable[[], datetime] = utc_now,
        policy_refresh: float | None = None,
    ) -> None:
        self.settings, self.store, self.clock = settings, store, clock
        self.metrics = Metrics()
        self.keyring = CouncilKeyring(settings.keys_dir)
        self.protection = Protection.from_dir(settings.keys_dir)
        self.policy = PolicyCache(store, interval=policy_refresh or settings.policy_refresh_seconds)
        self.sealer = audit.AuditSealer(
            store, clock=clock, signer=KeyringCheckpointSigner(self.keyring, clock)
        )
        self.group_commit = GroupCommit(store)
        self.pipeline = Pipeline(
            org_id=settings.org_id, store=store, policy=self.policy, keyring=self.keyring,
            protection=self.protection, metrics=self.metrics, clock=clock,
            group_commit=self.group_commit,
        )  # fmt: skip
        self.receipts = ReceiptIntake(
            store=store, policy=self.policy, org_id=settings.org_id, metrics=self.metrics,
            clock=clock,
        )  # fmt: skip
        self.broker_ready: Callable[[], Awaitable[bool]] | None = None

    @classmethod
    async def open(cls, settings: Settings, **kwargs: Any) -> Gateway:
        """Open the store (migrating it to head), make keys on first start, load policy."""
        store = await Store.open(settings.resolved_database_url)
        try:
            await store.upgrade()
            gateway = cls(settings, store, **kwargs)
            await ensure_council_key(store, gateway.keyring, gateway.clock())
            await gateway.policy.refresh()
        except BaseException:
            await store.close()
            raise
        return gateway

    def start(self) -> None:
        """Start the background loops this process needs (policy refresh, audit sealing)."""
        self.policy.start()
        self.sealer.start()

    async def close(self) -> None:
        """Stop the loops, seal what is pending, close the store."""
        await self.policy.stop()
        await self.group_commit.close()
        await self.sealer.stop()
        await self.store.close()

    async def authenticate(self, token: str) -> Client | None:
        """The active client holding this bearer token, if any."""
        return await self.policy.client(token)

    async def disclosure_view(self, disclosure_id: str, client: Client) -> DisclosureView:
        """GET /v1/disclosures/{id} for this client (NotFoundError otherwise)."""
        return await disclosure_view(self.store, disclosure_id, client.name)

    def jwks(self) -> dict[str, Any]:
        """The council's published signing keys."""
        return self.keyring.jwks(self.clock())

    async def readiness(self) -> dict[str, str]:
        """Database and (when configured) broker reachability."""
        checks = {"database": "ok" if await self.store.ping() else "unreachable"}
        if self.settings.broker_url:
            probe = self.broker_ready or self._connect_to_broker
            checks["broker"] = "ok" if await probe() else "unreachable"
        return checks

    async def _connect_to_broker(self) -> bool:
        """An API-only process has no broker connection of its own: open and close one."""
        connection = aio_pika.Connection(make_url(self.settings.broker_url))
        try:
            await connection.connect(timeout=3)
        except (OSError, aio_pika.exceptions.AMQPError, TimeoutError):
            return False
        finally:
            # Closed on failure too: an unclosed one schedules its own close when collected,
            # which fails (never awaited) if the collector runs on a thread without the loop.
            await connection.close()
        return True

    async def refresh_gauges(self) -> None:
        """Gauges read at scrape time: outbox depth."""
        try:
            async with self.store.read() as conn:
                depth = await conn.scalar(
                    select(func.count()).select_from(outbox).where(outbox.c.state == "pending")
                )
        except Exception:  # a scrape must never fail because the database is down
            log.warning("outbox_depth_unavailable")
            return
        self.metrics.outbox_depth.set(depth or 0)


GATEWAY_KEY = web.AppKey("gateway", Gateway)
