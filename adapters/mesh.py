"""The NHS MESH channel: deliver a sealed envelope to a partner's MESH mailbox, exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from adapters.mesh_chunking import UploadPlan, plan_upload
from adapters.mesh_client import MeshClient
from adapters.mesh_config import MeshConfig, check_base_url
from adapters.mesh_errors import MeshApiError, MeshError
from adapters.mesh_messages import UPLOADING, Tracking
from gateway.application.channel import DeliveryOutcome, DeliveryResult, Envelope

log = structlog.get_logger(__name__)

DEFAULT_SUBJECT = "Gatehouse disclosure"
_PLAN_INLINE_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class MeshTarget:
    """Where one partner receives over MESH (from the agreement's transport settings)."""

    mailbox: str
    workflow_id: str
    environment_url: str | None = None
    gzip: bool = False
    subject: str = DEFAULT_SUBJECT

    @classmethod
    def from_mapping(
        cls, target: Mapping[str, Any], *, allow_insecure_loopback: bool
    ) -> MeshTarget:
        """Read `mailbox`, `workflow_id`, optional `environment_url`, `gzip`, `subject`."""
        mailbox = str(target.get("mailbox") or "").strip().upper()
        workflow_id = str(target.get("workflow_id") or "").strip()
        if not mailbox or not workflow_id:
            raise ValueError("a MESH target needs mailbox and workflow_id")
        url = target.get("environment_url") or None
        if url is not None:
            url = check_base_url(str(url), allow_insecure_loopback=allow_insecure_loopback)
        gzip = target.get("gzip", False)
        if not isinstance(gzip, bool):
            raise ValueError("gzip must be true or false")
        subject = str(target.get("subject") or DEFAULT_SUBJECT)
        return cls(mailbox, workflow_id, url, gzip, subject)


def _failure(exc: MeshError, envelope: Envelope) -> DeliveryResult:
    detail: dict[str, Any] = {}
    retry_after = None
    if isinstance(exc, MeshApiError):
        detail = {"http_status": exc.http_status, "mesh_error_code": exc.mesh_code}
        retry_after = exc.retry_after
    outcome = DeliveryOutcome.TRANSIENT if exc.transient else DeliveryOutcome.PERMANENT
    log.warning(
        "mesh_delivery_failed",
        disclosure_id=envelope.message_id,
        partner=envelope.partner_id,
        outcome=str(outcome),
        reason=exc.code,
        **detail,
    )
    return DeliveryResult(outcome, reason=exc.code, detail=detail, retry_after=retry_after)


def _dispatched(mesh_message_id: str, **extra: Any) -> DeliveryResult:
    return DeliveryResult(
        DeliveryOutcome.DISPATCHED, detail={"mesh_message_id": mesh_message_id, **extra}
    )


class MeshChannel:
    """The `Channel` for NHS partners: MESH `accepted` means dispatched; never raises for MESH.

    Before every upload it asks MESH for a message with our local id (= the disclosure id), so
    a retry after a lost reply, a crash or an outage never creates a second message.
    """

    def __init__(self, config: MeshConfig, client: MeshClient | None = None) -> None:
        self.config = config
        self.client = client or MeshClient(config)

    async def deliver(self, envelope: Envelope, target: Mapping[str, Any]) -> DeliveryResult:
        """Send the envelope to the partner's mailbox once; MESH faults come back as results."""
        try:
            where = MeshTarget.from_mapping(
                target, allow_insecure_loopback=self.config.allow_insecure_loopback
            )
            plan = await self._plan(envelope.body, gzip_allowed=where.gzip)
        except ValueError as exc:
            log.warning("mesh_target_invalid", disclosure_id=envelope.message_id, error=str(exc))
            return DeliveryResult(DeliveryOutcome.PERMANENT, reason="mesh_invalid_target")
        try:
            if self.config.track_before_send:
                existing = await self.client.track_local_id(
                    envelope.message_id, base_url=where.environment_url
                )
                if existing is not None:
                    return await self._settle(existing, envelope, where, plan)
            sent = await self.client.send(
                plan,
                recipient=where.mailbox,
                workflow_id=where.workflow_id,
                local_id=envelope.message_id,
                subject=where.subject,
                filename=f"{envelope.message_id}.jwe",
                content_type=envelope.content_type,
                encrypted=True,
                base_url=where.environment_url,
            )
        except MeshError as exc:
            return _failure(exc, envelope)
        log.info(
            "mesh_dispatched",
            disclosure_id=envelope.message_id,
            partner=envelope.partner_id,
            mesh_message_id=sent.message_id,
            chunks=sent.chunks,
        )
        return _dispatched(sent.message_id, chunks=sent.chunks, compressed=sent.compressed)

    async def _plan(self, body: bytes, *, gzip_allowed: bool) -> UploadPlan:
        """Small bodies are planned inline; big ones (gzip of megabytes) off the event loop."""
        if len(body) <= _PLAN_INLINE_BYTES:
            return plan_upload(body, self.config.chunk_size, gzip_allowed=gzip_allowed)
        return await asyncio.to_thread(
            plan_upload, body, self.config.chunk_size, gzip_allowed=gzip_allowed
        )

    async def _settle(
        self, existing: Tracking, envelope: Envelope, where: MeshTarget, plan: UploadPlan
    ) -> DeliveryResult:
        """A message with our local id exists: report it, finish its upload, or refuse."""
        context = {"disclosure_id": envelope.message_id, "mesh_message_id": existing.message_id}
        if existing.recipient and existing.recipient != where.mailbox:
            log.error("mesh_local_id_conflict", **context)
            return DeliveryResult(
                DeliveryOutcome.PERMANENT,
                reason="mesh_local_id_conflict",
                detail={"mesh_message_id": existing.message_id},
            )
        if existing.delivered:
            log.info("mesh_already_sent", status=existing.status, **context)
            return _dispatched(existing.message_id, already_sent=True)
        if existing.status == UPLOADING:
            log.info("mesh_resuming_upload", chunks=plan.total, **context)
            await self.client.upload_chunks(
                existing.message_id, plan, first=2, base_url=where.environment_url
            )
            return _dispatched(existing.message_id, resumed=True, chunks=plan.total)
        log.warning("mesh_previous_attempt_failed", status=existing.status, **context)
        return DeliveryResult(
            DeliveryOutcome.PERMANENT,
            reason="mesh_delivery_error",
            detail={"mesh_message_id": existing.message_id, "mesh_status": existing.status},
        )

    async def close(self) -> None:
        """Release pooled connections."""
        await self.client.close()
