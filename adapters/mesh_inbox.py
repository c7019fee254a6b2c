"""What comes back over MESH: transport acknowledgements, failures and receipts, as the
application's events (`gateway.application.inbound`).

Two sources feed one handler, both read by `poll_once`. `check_dispatched` tracks messages we
sent (acknowledged -> `TransportAcknowledged`; error -> `DeliveryFailed`). `poll_inbox` reads our
own inbox: REPORT messages (`mex-LinkedMsgID`, `mex-StatusCode`) -> `DeliveryFailed`; DATA on the
agreed receipt workflow -> `ReceiptArrived`. An inbox message is acknowledged only after the
handler returns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

import structlog

from adapters.mesh_client import MeshClient
from adapters.mesh_errors import MESH_UNDELIVERED, MeshApiError, MeshError
from adapters.mesh_messages import (
    ACKNOWLEDGED,
    EXPIRED,
    REPORT,
    UNDELIVERABLE,
    InboxMessage,
    Tracking,
)
from gateway.application.inbound import (
    DeliveryFailed,
    Dispatched,
    MeshEvent,
    MeshEventHandler,
    ReceiptArrived,
    TransportAcknowledged,
)

log = structlog.get_logger(__name__)
_MAX_IGNORED = 10_000


@dataclass(slots=True)
class PollSummary:
    """Counts from one round, for logs and metrics."""

    events: int = 0
    acknowledged: int = 0
    ignored: int = 0
    handler_failures: int = 0


def failure_reason(status: str | None, status_code: str | None) -> str:
    """`mesh_undelivered` for MESH code 14 / undeliverable / expired, else `mesh_delivery_error`."""
    if status_code == MESH_UNDELIVERED or status in (UNDELIVERABLE, EXPIRED):
        return "mesh_undelivered"
    return "mesh_delivery_error"


def event_from_tracking(tracking: Tracking, local_id: str | None = None) -> MeshEvent | None:
    """Acknowledged -> TransportAcknowledged; failed -> DeliveryFailed; otherwise still pending."""
    local = tracking.local_id or local_id
    if tracking.status == ACKNOWLEDGED:
        return TransportAcknowledged(tracking.message_id, local)
    if tracking.failed:
        return DeliveryFailed(
            mesh_message_id=tracking.message_id,
            local_id=local,
            reason=failure_reason(tracking.status, tracking.status_code),
            status_code=tracking.status_code,
            description=tracking.description,
        )
    return None


def event_from_inbox(message: InboxMessage, *, receipt_workflow_id: str) -> MeshEvent | None:
    """A failure REPORT or a receipt; None for what is not ours to handle."""
    if message.message_type == REPORT:
        if (message.mex("StatusSuccess") or "").upper() == "SUCCESS":
            return None
        code = message.mex("StatusCode")
        return DeliveryFailed(
            mesh_message_id=message.mex("LinkedMsgID"),
            local_id=message.local_id,
            reason=failure_reason(None, code),
            status_code=code,
            description=message.mex("StatusDescription"),
        )
    if message.workflow_id == receipt_workflow_id:
        return ReceiptArrived(message.body, message.message_id, message.local_id, message.sender)
    return None


class MeshInboxPoller:
    """Reads our mailbox and tracks our sent messages, handing typed events to one handler."""

    def __init__(self, client: MeshClient, *, receipt_workflow_id: str | None = None) -> None:
        self.client = client
        self.receipt_workflow_id = receipt_workflow_id or client.config.receipt_workflow_id
        self._ignored: set[str] = set()

    async def poll_inbox(self, handler: MeshEventHandler) -> PollSummary:
        """One pass over the inbox; raises MeshError only when MESH itself is unavailable."""
        summary = PollSummary()
        for message_id in await self.client.list_inbox():
            if message_id in self._ignored:
                summary.ignored += 1
                continue
            message = await self.client.download(message_id)
            event = event_from_inbox(message, receipt_workflow_id=self.receipt_workflow_id)
            if event is None and message.message_type != REPORT:
                # Someone else's traffic on our mailbox: leave it for its own consumer.
                self._remember_ignored(message_id)
                summary.ignored += 1
                continue
            if event is not None:
                if not await self._handle(handler, event, message_id, summary):
                    continue
                summary.events += 1
            await self.client.acknowledge(message_id)
            summary.acknowledged += 1
        return summary

    async def check_dispatched(
        self, dispatched: Iterable[Dispatched], handler: MeshEventHandler
    ) -> PollSummary:
        """Track each message still awaiting its transport receipt; emit what has changed."""
        summary = PollSummary()
        for item in dispatched:
            try:
                tracking = await self.client.track(item.mesh_message_id, base_url=item.base_url)
            except MeshApiError as exc:
                if exc.http_status != 404:
                    raise
                # Unknown to MESH (purged after its retention, or another mailbox's): skip it.
                log.warning("mesh_tracking_unknown", mesh_message_id=item.mesh_message_id)
                summary.ignored += 1
                continue
            event = event_from_tracking(tracking, item.local_id)
            if event is not None and await self._handle(
                handler, event, item.mesh_message_id, summary
            ):
                summary.events += 1
        return summary

    async def poll_once(self, handler: MeshEventHandler) -> dict[str, int]:
        """The inbox, then the tracking of what `handler` says is pending; a MESH outage is
        logged and waits for the next call."""
        try:
            inbox = await self.poll_inbox(handler)
            tracked = await self.check_dispatched(await handler.pending(), handler)
        except MeshError as exc:
            log.warning("mesh_poll_failed", reason=exc.code)
            return {"unreachable": 1}
        return {
            f.name: getattr(inbox, f.name) + getattr(tracked, f.name) for f in fields(PollSummary)
        }

    async def _handle(
        self, handler: MeshEventHandler, event: MeshEvent, message_id: str, summary: PollSummary
    ) -> bool:
        try:
            await handler(event)
        except Exception as exc:  # the handler's fault must not stop the other messages
            summary.handler_failures += 1
            log.error(
                "mesh_event_handler_failed",
                mesh_message_id=message_id,
                event_type=type(event).__name__,
                error=type(exc).__name__,
            )
            return False
        return True

    def _remember_ignored(self, message_id: str) -> None:
        if len(self._ignored) >= _MAX_IGNORED:
            self._ignored.clear()
        self._ignored.add(message_id)
