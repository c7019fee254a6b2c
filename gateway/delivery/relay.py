"""The outbox relay: publish accepted envelopes to RabbitMQ, mark them only after the confirm.

Rows are claimed under a short lease, so several relays (several gateway processes) never
publish the same row at once; a crash between the broker's confirm and the mark leaves the row
to be published again when its lease runs out: a duplicate with the same message id (the
disclosure id, the envelope's `jti`), which the worker and the partner both recognise.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from gateway.queue.messages import OutgoingMessage
from gateway.queue.rabbit import RabbitTransport
from gateway.store import outbox
from gateway.store.database import Store
from gateway.store.group_commit import SetWise
from gateway.store.unit_of_work import Connection

log = structlog.get_logger("gateway.delivery.relay")

FINISH_SECONDS = 5.0
PartnerReady = Callable[[str], Awaitable[bool]]
"""Declares a partner's queues (and starts its consumer) before its first publish."""


@dataclass(frozen=True, slots=True)
class RelayOptions:
    """How the relay claims and paces."""

    owner: str
    lease: timedelta = timedelta(seconds=30)  # a crashed relay's rows are published again after
    batch: int = 200
    poll_interval: float = 0.05
    overlap: int = 4  # batches published at once (each waiting for its confirms)
    unconfirmed_backoff: timedelta = timedelta(seconds=1)


class OutboxRelay:
    """Moves pending outbox rows onto the broker with pipelined publisher confirms."""

    def __init__(
        self,
        *,
        store: Store,
        transport: RabbitTransport,
        clock: Callable[[], datetime],
        options: RelayOptions,
        partner_ready: PartnerReady,
    ) -> None:
        self.store, self.transport, self.clock, self.options = store, transport, clock, options
        self.partner_ready = partner_ready
        self._wake = asyncio.Event()
        self.published = 0

    def notify(self) -> None:
        """New rows were written: publish now rather than at the next poll."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop` is set; database or broker blips only pause it.

        Batches overlap: while one waits for its confirms (a quorum queue confirms once the
        message is on its replicas' disks), the next is claimed and published, up to
        `options.overlap` batches at once. Each batch holds its own leased rows.
        """
        pending: set[asyncio.Task[int]] = set()
        try:
            while not stop.is_set():
                self._wake.clear()
                if len(pending) >= self.options.overlap:
                    await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    continue
                if await self._claim_batch(pending) >= self.options.batch:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.options.poll_interval)
        finally:
            await _finish(pending)

    async def _claim_batch(self, pending: set[asyncio.Task[int]]) -> int:
        """Claim a batch and start publishing it; how many rows it has. Only the batch's own
        task holds its envelopes, so they go once it is done with them."""
        try:
            items = await self._claim()
        except Exception as exc:  # the database may be briefly away: try again soon
            log.error("relay_failed", error_type=type(exc).__name__)
            return 0
        if items:
            task = asyncio.create_task(self._publish_batch(items), name="relay-batch")
            pending.add(task)
            task.add_done_callback(pending.discard)
        return len(items)

    async def _claim(self) -> list[outbox.OutboxItem]:
        o = self.options
        # Claims and marks share their commits with whatever else is being written now.
        return await self.store.write(
            SetWise(outbox.claim_each, outbox.Claim(o.owner, self.clock(), o.lease, o.batch))
        )

    async def _publish_batch(self, items: list[outbox.OutboxItem]) -> int:
        try:
            return await self._publish(items)
        except Exception as exc:  # the rows stay leased and come back; never crash the loop
            log.error("relay_failed", error_type=type(exc).__name__)
            return 0

    async def _publish(self, items: list[outbox.OutboxItem]) -> int:
        """Publish the batch; `items` is emptied as it goes (see `_claim_batch`)."""
        o = self.options
        ready = {p: await self.partner_ready(p) for p in {i.partner_id for i in items}}
        rows = [(i.id, i.disclosure_id) for i in items]
        messages = [
            OutgoingMessage(i.disclosure_id, i.partner_id, i.envelope)
            for i in items
            if ready[i.partner_id]
        ]
        items.clear()  # the envelopes now live only in `messages`, until their confirms
        report = await self.transport.publish_many(messages)
        del messages
        confirmed = set(report.confirmed)
        done = [id_ for id_, disclosure_id in rows if disclosure_id in confirmed]
        now = self.clock()
        marks = (outbox.Mark(id_, o.owner, outbox.PUBLISHED, now) for id_ in done)
        await asyncio.gather(*(self.store.write(SetWise(outbox.mark_each, m)) for m in marks))
        unconfirmed = [id_ for id_, disclosure_id in rows if disclosure_id not in confirmed]
        if unconfirmed:

            async def release(conn: Connection) -> None:
                for id_ in unconfirmed:
                    await outbox.release(
                        conn, id_, owner=o.owner, available_at=now + o.unconfirmed_backoff
                    )

            await self.store.write(release)
        self.published += len(done)
        if len(done) < len(rows):
            log.warning("relay_unpublished", count=len(rows) - len(done))
        return len(rows)


async def _finish(pending: set[asyncio.Task[int]]) -> None:
    """Let batches in flight be confirmed and marked; cut short, their rows come back by lease."""
    try:
        if pending:
            await asyncio.wait(set(pending), timeout=FINISH_SECONDS)
    finally:
        for task in pending:
            task.cancel()
