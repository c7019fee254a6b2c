"""The one composition root: settings in, a wired Gateway out, by constructor injection."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from datetime import datetime
from typing import Any

import aio_pika
import aio_pika.exceptions
import structlog
from aio_pika.connection import make_url

from adapters.email import EmailChannel, SmtpOptions
from adapters.imap_receipts import ImapOptions, ImapReceiptMailbox
from adapters.mesh import MeshChannel
from adapters.mesh_config import load_mesh_config
from adapters.mesh_inbox import MeshInboxPoller
from adapters.sftp import CLIENT_KEY_FILE, SftpChannel, SftpOptions, SftpReceiptPoller
from adapters.webhook import WebhookChannel
from gateway import audit
from gateway.application.approval_decisions import ApprovalDecisions
from gateway.application.channel import Channel
from gateway.application.council_key_rotation import ensure_signing_key
from gateway.application.notice_sending import SendNotices
from gateway.application.receipt_intake import ReceiptIntake
from gateway.application.submit import SubmitDisclosures
from gateway.audit_anchor import AnchorFile, CheckpointAnchor, TimeStampAuthority, TsaTrust
from gateway.background import Loops
from gateway.clients import Client, certificate_sha256
from gateway.clock import utc_now
from gateway.council_smime import load_council_smime
from gateway.council_smime import paths as smime_paths
from gateway.delivery.engine import DeliveryOptions, DeliveryService, InboundPollers
from gateway.disclosure_view import DisclosureReport, disclosure_report
from gateway.keys import CouncilKeyring, KeyringCheckpointSigner
from gateway.metrics import Metrics
from gateway.notice_envelope import NoticeSealer
from gateway.policy_cache import PolicyCache
from gateway.protection import Protection
from gateway.sealing import CouncilSealer
from gateway.settings import Settings
from gateway.store import outbox
from gateway.store.database import Store
from gateway.store.receipt_ledger import ReceiptLedger
from gateway.store.submissions import SubmissionLedger

log = structlog.get_logger("gateway.service")
DEFAULT_SIGNING_ALG = "ES256"
# Channels that need nothing configured beyond the keys directory (the SFTP key is made there).
DELIVERABLE_CHANNELS = frozenset({"webhook", "sftp"})


READINESS_TIMEOUT = 2.0  # seconds: a stalled database or broker is "unreachable", not a hang
READINESS_CACHE_SECONDS = 1.0  # probes from several places cost one check a second


async def _bounded(probe: Coroutine[Any, Any, bool]) -> bool:
    """A readiness probe's answer, or False when it takes longer than READINESS_TIMEOUT."""
    try:
        return await asyncio.wait_for(probe, READINESS_TIMEOUT)
    except TimeoutError:
        return False


def deliverable_channels(settings: Settings) -> frozenset[str]:
    """The channels whose settings are present: a partner on any other is refused at submission.

    The API and worker roles read the same environment, so both agree on this set.
    """
    configured = set(DELIVERABLE_CHANNELS)
    if os.environ.get("GATEWAY_MESH_MAILBOX"):
        configured.add("mesh")
    if email_configured(settings):
        configured.add("email")
    return frozenset(configured)


def email_configured(settings: Settings) -> bool:
    """Mail can leave: through a submission server, or directly to partners' mail servers."""
    return bool(settings.smtp_host) or settings.smtp_delivery == "direct"


def smtp_options(settings: Settings) -> SmtpOptions:
    """The email channel's settings (GATEWAY_SMTP_*)."""
    return SmtpOptions(
        host=settings.smtp_host,
        port=settings.smtp_port,
        from_address=settings.smtp_from or f"disclosures@{settings.org_id}.invalid",
        council=settings.org_id,
        username=settings.smtp_username or None,
        password=settings.smtp_password.get_secret_value() or None,
        ca_bundle=settings.smtp_ca_bundle or None,
        timeout=settings.smtp_timeout,
        sends_at_once=settings.smtp_sends_at_once,
        notify_address=settings.smtp_notify_address or None,
        max_message_bytes=settings.smtp_max_message_bytes,
        direct=settings.smtp_delivery == "direct",
        direct_port=settings.smtp_direct_port,
        dns_servers=settings.smtp_name_servers.addresses,
        dns_port=settings.smtp_name_servers.port,
        mta_sts_port=settings.smtp_mta_sts_port,
        smime=load_council_smime(
            *smime_paths(settings.keys_dir, settings.smime_cert_file, settings.smime_key_file)
        ),
    )


def sftp_options(settings: Settings) -> SftpOptions:
    """The SFTP channel's settings (GATEWAY_SFTP_*), its key in the keys directory by default."""
    return SftpOptions(
        client_key=settings.sftp_key_file or settings.keys_dir / CLIENT_KEY_FILE,
        username=settings.sftp_username or settings.org_id,
        connect_timeout=settings.sftp_connect_timeout,
        transfer_timeout=settings.sftp_transfer_timeout,
        uploads_per_partner=settings.sftp_uploads_per_partner,
        fsync=settings.sftp_fsync,
    )


def receipts_mailbox(settings: Settings) -> ImapReceiptMailbox | None:
    """The council's receipts mailbox (GATEWAY_IMAP_*), when GATEWAY_IMAP_HOST is set."""
    if not settings.imap_host:
        return None
    return ImapReceiptMailbox(
        ImapOptions(
            host=settings.imap_host,
            port=settings.imap_port,
            username=settings.imap_username,
            password=settings.imap_password.get_secret_value(),
            ca_bundle=settings.imap_ca_bundle or None,
            inbox=settings.imap_inbox,
            archive=settings.imap_archive,
            quarantine=settings.imap_quarantine,
            timeout=settings.imap_timeout,
        )
    )


def inbound_pollers(settings: Settings, channels: Mapping[str, Channel]) -> InboundPollers:
    """What comes back: over the MESH and SFTP channels built, and to the receipts mailbox."""
    mesh, sftp = channels.get("mesh"), channels.get("sftp")
    return InboundPollers(
        mesh=MeshInboxPoller(mesh.client) if isinstance(mesh, MeshChannel) else None,
        sftp=SftpReceiptPoller(sftp) if isinstance(sftp, SftpChannel) else None,
        mailbox=receipts_mailbox(settings),
    )


def build_channels(settings: Settings) -> dict[str, Channel]:
    """Webhook and SFTP always; NHS MESH with GATEWAY_MESH_MAILBOX; email with GATEWAY_SMTP_HOST."""
    channels: dict[str, Channel] = {
        "webhook": WebhookChannel(
            connect_timeout=settings.webhook_connect_timeout,
            total_timeout=settings.webhook_total_timeout,
            allow_insecure_loopback=settings.allow_insecure_loopback,
        ),
        "sftp": SftpChannel(sftp_options(settings)),
    }
    if os.environ.get("GATEWAY_MESH_MAILBOX"):
        channels["mesh"] = MeshChannel(load_mesh_config())
    if email_configured(settings):
        channels["email"] = EmailChannel(smtp_options(settings))
    return channels


def checkpoint_anchor(settings: Settings) -> CheckpointAnchor | None:
    """The external audit anchor when GATEWAY_AUDIT_ANCHOR is set (time-stamped if a TSA is)."""
    if settings.audit_anchor is None:
        return None
    tsa = None
    if settings.audit_tsa_url and settings.audit_tsa_ca is not None:
        tsa = TimeStampAuthority(settings.audit_tsa_url, TsaTrust.from_file(settings.audit_tsa_ca))
    return CheckpointAnchor(AnchorFile(settings.audit_anchor), tsa)


class Gateway:
    """Everything a gateway process holds: store, policy, keys, use cases, metrics, and, with
    `channels`, the delivery engine (the worker role)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Callable[[], datetime] = utc_now,
        policy_refresh: float | None = None,
        channels: Mapping[str, Channel] | None = None,
        delivery_options: DeliveryOptions | None = None,
        deliverable: frozenset[str] | None = None,
    ) -> None:
        """`deliverable`: channels accepted at submission; default: those `channels` holds,
        else those the settings configure."""
        self.settings, self.store, self.clock = settings, store, clock
        if deliverable is None:
            deliverable = (
                deliverable_channels(settings) if channels is None else frozenset(channels)
            )
        self.deliverable = deliverable
        self._readiness: tuple[float, dict[str, str]] | None = None
        self._readiness_lock = asyncio.Lock()
        self.metrics = Metrics()
        self.keyring = CouncilKeyring(settings.keys_dir)
        self.protection = Protection.from_dir(settings.keys_dir)
        self.loops = Loops()
        self.policy = PolicyCache(store, interval=policy_refresh or settings.policy_refresh_seconds)
        self.sealer = audit.AuditSealer(
            store,
            clock=clock,
            signer=KeyringCheckpointSigner(self.keyring, clock),
            anchor=checkpoint_anchor(settings),
        )
        self.receipts = ReceiptIntake(
            records=ReceiptLedger(store),
            policy=self.policy,
            org_id=settings.org_id,
            metrics=self.metrics,
            clock=clock,
        )
        self.channels: Mapping[str, Channel] = channels or {}
        self.delivery = (
            None
            if channels is None
            else DeliveryService(
                settings=settings,
                store=store,
                policy=self.policy,
                intake=self.receipts,
                metrics=self.metrics,
                channels=channels,
                clock=clock,
                options=delivery_options,
                inbound=inbound_pollers(settings, channels),
                certificates=self._mdn_signers,
                protection=self.protection,
            )
        )
        self.submit = SubmitDisclosures(
            org_id=settings.org_id,
            records=SubmissionLedger(store, self.protection),
            policy=lambda: self.policy.snapshot,
            sealer=CouncilSealer(self.keyring),
            protection=self.protection,
            metrics=self.metrics,
            clock=clock,
            deliverable_channels=deliverable,
            on_accepted=None if self.delivery is None else self.delivery.notify,
            envelope_lifetime=settings.envelope_lifetime,
        )
        self.notices = SendNotices(
            org_id=settings.org_id,
            store=store,
            policy=lambda: self.policy.snapshot,
            sealer=NoticeSealer(self.keyring),
            protection=self.protection,
            clock=clock,
            envelope_lifetime=settings.envelope_lifetime,
            records_retention=settings.records_retention,
        )
        self.approvals = ApprovalDecisions(
            store=store,
            policy=self.policy,
            sealer=self.submit,
            protection=self.protection,
            clock=clock,
            deliverable_channels=deliverable,
        )

    async def _mdn_signers(self, partner_id: str) -> Sequence[bytes]:
        """A partner's registered S/MIME certificates usable now: who may sign its MDNs."""
        now = self.clock()
        certs = self.policy.snapshot.certs.get(partner_id, ())
        return tuple(c.pem.encode("ascii") for c in certs if c.usable_at(now))

    @classmethod
    async def open(cls, settings: Settings, *, deliver: bool = False, **kwargs: Any) -> Gateway:
        """Open the store (migrating it to head), make keys on first start, load policy.

        `deliver`: also build the delivery engine with the channels the settings configure.
        """
        store = await Store.open(settings.resolved_database_url, settings.database_options)
        try:
            await store.upgrade()
            if deliver:
                kwargs.setdefault("channels", build_channels(settings))
            gateway = cls(settings, store, **kwargs)
            await ensure_signing_key(
                store, gateway.keyring, DEFAULT_SIGNING_ALG, at=gateway.clock()
            )
            await gateway.policy.refresh()
        except BaseException:
            await store.close()
            raise
        return gateway

    async def start(self) -> None:
        """Start the background work: policy refresh, audit sealing, and delivery if built."""
        self.loops.start(
            "policy-refresh",
            self.policy.interval,
            self.policy.refresh,
            failed="policy_refresh_failed",
        )
        self.loops.start(
            "audit-sealer",
            self.sealer.interval,
            self.sealer.seal_if_due,
            failed="audit_seal_failed",
        )
        if self.delivery is not None:
            await self.delivery.start()

    async def close(self, grace: float = 10.0) -> None:
        """Finish deliveries in flight (up to `grace` s), stop the loops, seal, close."""
        try:
            if self.delivery is not None:
                await self.delivery.stop(grace)
        finally:
            for channel in self.channels.values():
                await channel.close()
            await self.loops.stop()
            await self.sealer.seal_now()  # nothing stays unchained after shutdown
            await self.store.close()

    async def authenticate(self, token: str) -> Client | None:
        """The active client holding this bearer token, if any and not expired."""
        client = await self.policy.client(token)
        if client is None or not client.token_valid_at(self.clock()):
            return None
        return client

    async def authenticate_certificate(self, der: bytes) -> Client | None:
        """The active client a verified TLS client certificate is registered to, if any."""
        return await self.policy.client_by_certificate(certificate_sha256(der))

    async def disclosure_report(self, disclosure_id: str, client: Client) -> DisclosureReport:
        """One of this client's disclosures (NotFoundError otherwise)."""
        return await disclosure_report(self.store, disclosure_id, client.name)

    def jwks(self) -> dict[str, Any]:
        """The council's published signing keys."""
        return self.keyring.jwks(self.clock())

    async def readiness(self) -> dict[str, str]:
        """Database and (when configured) broker reachability, each within READINESS_TIMEOUT,
        remembered for a second.

        Concurrent probes wait for the one check in flight instead of each opening a connection.
        """
        async with self._readiness_lock:
            cached = self._readiness
            if cached is not None and time.monotonic() - cached[0] < READINESS_CACHE_SECONDS:
                return dict(cached[1])
            checks = await self._check_readiness()
            self._readiness = (time.monotonic(), checks)
            return dict(checks)

    async def _check_readiness(self) -> dict[str, str]:
        probes = {"database": self.store.ping()}
        if self.settings.broker_url:
            if self.delivery is not None:
                probes["broker"] = self.delivery.broker_ready()
            else:
                probes["broker"] = self._connect_to_broker()
        answers = await asyncio.gather(*(_bounded(probe) for probe in probes.values()))
        return {
            name: "ok" if ready else "unreachable"
            for name, ready in zip(probes, answers, strict=True)
        }

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
                depth = await outbox.pending_count(conn)
        except Exception:  # a scrape must never fail because the database is down
            log.warning("outbox_depth_unavailable")
            return
        self.metrics.outbox_depth.set(depth)
