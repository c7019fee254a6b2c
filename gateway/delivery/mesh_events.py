"""What MESH tells us after a send, recorded: transport receipts, failures, signed receipts.

- `TransportAcknowledged`: the recipient's MESH client downloaded and acknowledged the message;
  recorded once as the event `transport_acknowledged` (the status stays `dispatched`).
- `DeliveryFailed`: MESH gave up (undeliverable, expired, error report): `failed` with its reason.
- `ReceiptArrived`: a signed Gatehouse receipt sent back over MESH goes to the receipt intake,
  exactly like a webhook's; a refused receipt is audited there and its MESH message acknowledged.
`pending()` lists the MESH messages still awaiting their transport receipt, for the poller.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import structlog

from gateway.application.inbound import (
    DeliveryFailed,
    Dispatched,
    MeshEvent,
    ReceiptArrived,
    TransportAcknowledged,
)
from gateway.application.receipt_intake import ReceiptIntake
from gateway.delivery.deadlines import TRANSPORT_ACKNOWLEDGED, acknowledge_transport
from gateway.errors import NotFoundError
from gateway.policy_cache import PolicyCache
from gateway.receipts import ReceiptError
from gateway.store import delivery_records
from gateway.store.database import Store
from gateway.store.unit_of_work import Connection

log = structlog.get_logger("gateway.delivery.mesh")


class MeshEvents:
    """The MESH poller's `MeshEventHandler`: records events, names the messages to track."""

    def __init__(
        self,
        *,
        store: Store,
        policy: PolicyCache,
        intake: ReceiptIntake,
        clock: Callable[[], datetime],
        limit: int = 1000,
    ) -> None:
        self.store, self.policy, self.intake, self.clock = store, policy, intake, clock
        self.limit = limit

    async def __call__(self, event: MeshEvent) -> None:
        """Record one event; raising leaves the MESH message for the next poll."""
        if isinstance(event, ReceiptArrived):
            try:
                await self.intake.accept(event.body, via="mesh")
            except (ReceiptError, NotFoundError) as exc:  # refused and audited by the intake
                log.warning(
                    "mesh_receipt_refused", code=exc.code, mesh_message_id=event.mesh_message_id
                )
            return
        id_ = event.local_id or await self._by_mesh_id(event.mesh_message_id)
        if id_ is None:
            log.warning(
                "mesh_event_unmatched",
                action=type(event).__name__,
                mesh_message_id=event.mesh_message_id,
            )
            return
        if isinstance(event, TransportAcknowledged):
            await self._acknowledged(id_, event)
        else:
            await self._failed(id_, event)

    async def _acknowledged(self, id_: str, event: TransportAcknowledged) -> None:
        detail = {"mesh_message_id": event.mesh_message_id or "", "via": "mesh"}
        if await acknowledge_transport(self.store, id_, at=self.clock(), detail=detail):
            log.info("mesh_transport_acknowledged", disclosure_id=id_)

    async def _failed(self, id_: str, event: DeliveryFailed) -> None:
        now = self.clock()

        async def work(conn: Connection) -> bool:
            return await delivery_records.fail(conn, id_, reason=event.reason, at=now)

        moved = await self.store.write(work)
        if moved:
            log.warning(
                "mesh_delivery_failed",
                disclosure_id=id_,
                reason=event.reason,
                code=event.status_code,
            )

    async def _dispatched_events(self) -> list[tuple[str, str, Mapping[str, Any]]]:
        """(disclosure id, partner, dispatched event detail) of dispatched ones, newest first."""
        async with self.store.read() as conn:
            return await delivery_records.dispatch_details(conn, self.limit)

    async def _by_mesh_id(self, mesh_message_id: str | None) -> str | None:
        if not mesh_message_id:
            return None
        for id_, _partner, detail in await self._dispatched_events():
            if detail.get("mesh_message_id") == mesh_message_id:
                return id_
        return None

    async def pending(self) -> list[Dispatched]:
        """MESH messages we sent that have no transport receipt yet (for tracking)."""
        events = [e for e in await self._dispatched_events() if e[2].get("mesh_message_id")]
        if not events:
            return []
        async with self.store.read() as conn:
            done = await delivery_records.with_event(
                conn, [e[0] for e in events], TRANSPORT_ACKNOWLEDGED
            )
        found: dict[str, Dispatched] = {}
        for id_, partner, detail in events:
            if id_ not in done and id_ not in found:  # newest dispatch of each disclosure
                found[id_] = Dispatched(
                    str(detail["mesh_message_id"]), id_, self._base_url(partner)
                )
        return list(found.values())

    def _base_url(self, partner_id: str) -> str | None:
        """The partner's MESH environment, when it is not the poller's own default."""
        partner = self.policy.snapshot.partners.get(partner_id)
        return partner.channel.environment_url if partner is not None else None
