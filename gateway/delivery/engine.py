"""The delivery engine of one gateway process, built from explicit parts and started once.

With `settings.broker_url` set it runs the outbox relay and one RabbitMQ consumer per partner;
without, the embedded queue on the outbox table. Either way it also runs the receipt deadline
scanner and the inbound pollers it is given, each with its handler: the MESH poller (transport
receipts, failure reports, signed receipts sent back over MESH), the receipt poller of the SFTP
partners' outbound directories, and the receipts mailbox's (GATEWAY_IMAP_HOST).
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from gateway.application.channel import Channel
from gateway.application.dead_letter_reconcile import ReconcileReport, reconcile_dead_letters
from gateway.application.inbound import (
    InboundPoller,
    MailHandler,
    MeshEventHandler,
    ReceiptFileHandler,
)
from gateway.application.receipt_intake import ReceiptIntake
from gateway.background import Step, every
from gateway.clock import utc_now
from gateway.delivery.broker import BrokerDelivery, topology_for
from gateway.delivery.deadlines import ReceiptDeadlines
from gateway.delivery.email_receipts import EmailReceipts, PartnerCertificates, no_certificates
from gateway.delivery.embedded import EmbeddedOptions, EmbeddedQueue
from gateway.delivery.mesh_events import MeshEvents
from gateway.delivery.relay import OutboxRelay, RelayOptions
from gateway.delivery.sftp_receipts import SftpReceipts
from gateway.delivery.worker import DeliveryWorker
from gateway.metrics import Metrics
from gateway.policy_cache import PolicyCache
from gateway.protection import Protection
from gateway.queue.amqp import BROKER_FAULTS, BrokerError
from gateway.queue.rabbit import RabbitTransport
from gateway.settings import Settings
from gateway.store import outbox
from gateway.store.database import Store
from gateway.store.unit_of_work import Connection

log = structlog.get_logger("gateway.delivery")


def default_owner() -> str:
    """Who holds outbox leases: this host and process."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}"


def _dead_local_owner(owner: str) -> bool:
    """True for a lease owner on this host whose process no longer exists (it was killed)."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname()[:80] or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


async def reclaim_dead_leases(store: Store, now: datetime) -> int:
    """At start-up: rows leased by a crashed process on this host come back at once.

    Without this they would wait for the lease to run out (minutes, for the embedded queue).
    Owners on other hosts are left to their leases.
    """

    async def work(conn: Connection) -> int:
        released = 0
        for owner in await outbox.lease_owners(conn, now=now):
            if _dead_local_owner(owner):
                released += await outbox.release_owner(conn, owner)
        return released

    released = await store.write(work)
    if released:
        log.warning("leases_reclaimed", count=released)
    return released


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    """Pacing of the engine's loops; the defaults suit production, tests shorten them."""

    poll_interval: float = 0.1  # an idle relay or embedded queue looks at the outbox this often
    claim_lease: timedelta = timedelta(minutes=5)  # embedded: longer than any one attempt
    relay_lease: timedelta = timedelta(seconds=30)  # relay: a crashed relay's rows come back
    relay_batch: int = 200
    hold_recheck: timedelta = timedelta(seconds=30)  # suspended agreement: look again after
    deadline_interval: float | None = None  # None: settings.receipt_scan_seconds
    resend_limit: int = 3  # resends of an unreceipted envelope before `receipt_overdue`
    mesh_poll_interval: float = 30.0
    per_partner: int | None = None  # in flight per partner, all processes; None: the setting
    reconcile_interval: float = 300.0  # dead letters checked against the database (and at start)
    sftp_poll_interval: float | None = None  # None: settings.sftp_poll_seconds
    imap_poll_interval: float | None = None  # None: settings.imap_poll_seconds


@dataclass(frozen=True, slots=True)
class InboundPollers:
    """The channels' ways back in that this process reads (built by the composition root)."""

    mesh: InboundPoller[MeshEventHandler] | None = None
    sftp: InboundPoller[ReceiptFileHandler] | None = None
    mailbox: InboundPoller[MailHandler] | None = None


class DeliveryService:
    """Runs delivery for one process: `await start()`, later `await stop(grace)`."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        policy: PolicyCache,
        intake: ReceiptIntake,
        metrics: Metrics,
        channels: Mapping[str, Channel],
        clock: Callable[[], datetime] = utc_now,
        options: DeliveryOptions | None = None,
        owner: str | None = None,
        inbound: InboundPollers | None = None,
        certificates: PartnerCertificates = no_certificates,
        protection: Protection | None = None,
    ) -> None:
        """`inbound`: the pollers to run (default: none); `certificates`: who may sign a
        partner's MDNs; `protection`: the gateway's at-rest keys (default: those in
        GATEWAY_KEYS_DIR)."""
        self.settings, self.store, self.policy, self.clock = settings, store, policy, clock
        self.options = options or DeliveryOptions()
        self.owner = owner or default_owner()
        self.worker = DeliveryWorker(
            store=store,
            policy=policy,
            intake=intake,
            channels=channels,
            metrics=metrics,
            clock=clock,
            default_retry=settings.retry_policy,
            protection=protection or Protection.from_dir(settings.keys_dir),
            partner_concurrency=settings.partner_concurrency,
        )
        self.deadlines = ReceiptDeadlines(
            store=store,
            policy=policy,
            clock=clock,
            resend_limit=self.options.resend_limit,
            on_resend=self.notify,
        )
        self.mesh_events = MeshEvents(store=store, policy=policy, intake=intake, clock=clock)
        self.sftp_receipts = SftpReceipts(policy=policy, intake=intake, metrics=metrics)
        self.inbound = inbound or InboundPollers()
        self.email_receipts = EmailReceipts(
            store=store, intake=intake, metrics=metrics, clock=clock, certificates=certificates
        )
        self.transport: RabbitTransport | None = None
        self.relay: OutboxRelay | None = None
        self.broker: BrokerDelivery | None = None
        self.embedded: EmbeddedQueue | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def mode(self) -> str:
        """`rabbitmq` or `embedded`."""
        return "rabbitmq" if self.settings.broker_url else "embedded"

    @property
    def per_partner(self) -> int:
        """Envelopes per partner taken and not yet settled, across every worker process."""
        return self.options.per_partner or self.settings.partner_concurrency

    async def start(self) -> None:
        """Connect (RabbitMQ mode), then start every loop in the background."""
        if self._tasks:
            raise RuntimeError("the delivery service is already running")
        self._stop.clear()
        await reclaim_dead_leases(self.store, self.clock())
        if self.mode == "rabbitmq":
            await self._start_broker()
        else:
            self.embedded = EmbeddedQueue(
                self.worker,
                store=self.store,
                clock=self.clock,
                options=EmbeddedOptions(
                    owner=self.owner,
                    lease=self.options.claim_lease,
                    per_partner=self.per_partner,
                    poll_interval=self.options.poll_interval,
                    hold_recheck=self.options.hold_recheck,
                ),
            )
            self._spawn("embedded-queue", self.embedded.run(self._stop))
        self._spawn(
            "receipt-deadlines",
            every(
                self.options.deadline_interval or self.settings.receipt_scan_seconds,
                self.deadlines.scan_once,
                stop=self._stop,
                failed="deadline_scan_failed",
            ),
        )
        self._spawn(
            "dead-letter-reconcile",
            self._now_and_every(
                self.options.reconcile_interval, self.reconcile, "dead_letter_reconcile_failed"
            ),
        )
        if self.inbound.mesh is not None:
            self._spawn(
                "mesh-poller",
                self._now_and_every(
                    self.options.mesh_poll_interval, self.poll_mesh, "mesh_poll_failed"
                ),
            )
        if self.inbound.sftp is not None:
            self._spawn(
                "sftp-receipts",
                every(
                    self.options.sftp_poll_interval or self.settings.sftp_poll_seconds,
                    self.poll_sftp_receipts,
                    stop=self._stop,
                    failed="sftp_receipts_poll_failed",
                ),
            )
        if self.inbound.mailbox is not None:
            self._spawn(
                "email-receipts",
                every(
                    self.options.imap_poll_interval or self.settings.imap_poll_seconds,
                    self.poll_mailbox,
                    stop=self._stop,
                    failed="email_receipts_poll_failed",
                ),
            )
        log.info("delivery_started", broker=self.mode, host=self.owner)

    async def poll_mesh(self) -> Mapping[str, int]:
        """One look at the MESH inbox and at the tracking of messages awaiting their receipt."""
        mesh = self.inbound.mesh
        return {} if mesh is None else await mesh.poll_once(self.mesh_events)

    async def poll_sftp_receipts(self) -> Mapping[str, int]:
        """One look in every SFTP partner's outbound directory (counts by verdict)."""
        sftp = self.inbound.sftp
        return {} if sftp is None else await sftp.poll_once(self.sftp_receipts)

    async def poll_mailbox(self) -> Mapping[str, int]:
        """One look in the receipts mailbox (counts by verdict); an unreadable one is logged."""
        mailbox = self.inbound.mailbox
        return {} if mailbox is None else await mailbox.poll_once(self.email_receipts)

    async def _start_broker(self) -> None:
        s = self.settings
        topology = topology_for(s.broker_prefix, self.policy, s.retry_policy, s.delivery_limit)
        self.transport = await RabbitTransport.connect(
            s.broker_url, topology, connection_name=f"gatehouse-{self.owner}"
        )
        try:
            await self.transport.declare()
            self.broker = BrokerDelivery(
                self.worker,
                self.transport,
                prefetch=self.per_partner,
                hold_recheck=self.options.hold_recheck,
                default_retry=s.retry_policy,
            )
            await self.broker.consume_all()
        except (*BROKER_FAULTS, OSError) as exc:
            await self.transport.close(0)
            self.transport = None
            # As for a broker that cannot be reached at all: one line and exit 1 (the
            # supervisor starts the process again), not an uncaught traceback.
            raise BrokerError(
                f"the broker went away during start-up ({type(exc).__name__})"
            ) from None
        except BaseException:
            await self.transport.close(0)
            self.transport = None
            raise
        self.relay = OutboxRelay(
            store=self.store,
            transport=self.transport,
            clock=self.clock,
            options=RelayOptions(
                owner=self.owner,
                lease=self.options.relay_lease,
                batch=self.options.relay_batch,
                poll_interval=self.options.poll_interval,
            ),
            partner_ready=self.broker.partner_ready,
        )
        self._spawn("outbox-relay", self.relay.run(self._stop))

    async def reconcile(self) -> ReconcileReport:
        """Record `failed` for dead letters the database never heard of (see the use case)."""
        return await reconcile_dead_letters(self.store, clock=self.clock, broker=self.transport)

    async def _now_and_every(self, interval: float, step: Step, failed: str) -> None:
        """`step` at once, then every `interval` seconds (a failure logged as `failed`)."""
        try:
            await step()
        except Exception as exc:  # the database, broker or channel away: the next round tries
            log.error(failed, error_type=type(exc).__name__)
        await every(interval, step, stop=self._stop, failed=failed)

    def _spawn(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        self._tasks.append(asyncio.create_task(work, name=name))

    def notify(self) -> None:
        """Envelopes were just written to the outbox: relay or deliver them without waiting."""
        if self.relay is not None:
            self.relay.notify()
        if self.embedded is not None:
            self.embedded.notify()

    async def broker_ready(self) -> bool:
        """For /readyz: True in embedded mode, else whether the broker connection is up."""
        if self.mode == "embedded":
            return True
        if self.transport is None:
            return False
        try:
            await self.transport.queue_depths()
        except Exception:  # readiness must answer, never raise
            return False
        return True

    async def stop(self, grace: float = 10.0) -> None:
        """Stop taking work, let deliveries in flight finish within `grace` s, disconnect."""
        self._stop.set()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks.clear()
        if self.embedded is not None:
            await self.embedded.drain(grace)
            self.embedded = None
        if self.transport is not None:
            await self.transport.close(grace)
            self.transport = None
        self.relay = self.broker = None
        log.info("delivery_stopped", broker=self.mode)
