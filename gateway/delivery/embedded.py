"""The embedded queue: delivery straight from the outbox table, for one machine without a broker.

Same guarantees as the RabbitMQ path, on the database: a row is claimed under a lease (a crashed
worker's rows come back when the lease runs out); a failed attempt waits in the row itself
(`available_at`) with the same growing delays; spent attempts or a permanent failure leave the
row `dead` and the disclosure `failed`, replayable. Partners never block each other: each has
its own number of slots, counted over every process's leases, and a partner whose slots are
all busy is not claimed from.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from gateway.application.channel import Envelope
from gateway.delivery.worker import (
    HANDLER_ERROR,
    DeliveryWorker,
    Failed,
    Finished,
    OnHold,
    Transient,
    Verdict,
)
from gateway.errors import DatabaseUnavailableError
from gateway.queue.retry import GiveUp
from gateway.store import outbox
from gateway.store.database import Store
from gateway.store.group_commit import SetWise
from gateway.store.unit_of_work import Connection

log = structlog.get_logger("gateway.delivery.embedded")
CLAIM_GATHER_SECONDS = 0.005


@dataclass(frozen=True, slots=True)
class EmbeddedOptions:
    """How the embedded queue claims and paces its work."""

    owner: str
    lease: timedelta = timedelta(minutes=5)  # renewed every third of it while a row is in hand
    per_partner: int = 16  # leased and not yet settled, per partner, across every process
    poll_interval: float = 0.1  # seconds between looks at an idle outbox
    hold_recheck: timedelta = timedelta(seconds=30)  # a suspended agreement is looked at again


class EmbeddedQueue:
    """Claims due outbox rows per partner and hands each to the delivery worker."""

    def __init__(
        self,
        worker: DeliveryWorker,
        *,
        store: Store,
        clock: Callable[[], datetime],
        options: EmbeddedOptions,
    ) -> None:
        self.worker, self.store, self.clock, self.options = worker, store, clock, options
        self._inflight: dict[str, int] = {}
        self._items: dict[int, outbox.OutboxItem] = {}
        self._settled: list[outbox.Mark] = []  # finished rows, marked with the next claim
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """New work may be due (an envelope was accepted, a slot came free): look now."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Claim and deliver until `stop` is set; a database blip only pauses the loop."""
        keeper = asyncio.create_task(self._keep_leases(stop), name="embedded-leases")
        try:
            await self._claim_until(stop)
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _keep_leases(self, stop: asyncio.Event) -> None:
        """Renew the leases of the rows in hand every third of a lease.

        However long a delivery takes (a slow partner and the webhook timeout can outlast one
        lease), a row whose lease ran out while still in hand would be claimed
        again and sent twice.
        """
        every = self.options.lease.total_seconds() / 3
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
            held = list(self._items)
            if not held:
                continue
            until = self.clock() + self.options.lease

            async def renew(
                conn: Connection, held: list[int] = held, until: datetime = until
            ) -> int:
                return await outbox.extend_leases(conn, held, owner=self.options.owner, until=until)

            try:
                kept = await self.store.write(renew)
            except Exception as exc:  # a database blip: the next round tries again
                log.error("embedded_lease_renewal_failed", error_type=type(exc).__name__)
                continue
            if kept < len(held):  # settled meanwhile, or (after a long stall) taken over
                log.info("embedded_leases_renewed", held=len(held), renewed=kept)

    async def _claim_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            try:
                claimed = await self.claim_round()
            except DatabaseUnavailableError:
                claimed = 0  # logged once per outage by the store; try again shortly
            except Exception as exc:
                log.error("embedded_claim_failed", error_type=type(exc).__name__)
                claimed = 0
            if claimed:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.options.poll_interval)
                # Let other deliveries that finish at about the same time free their slots too,
                # so one claim takes several rows instead of one claim per row.
                await asyncio.sleep(CLAIM_GATHER_SECONDS)

    async def claim_round(self) -> int:
        """Claim what each partner has room for and start delivering it; returns how many."""
        settled, self._settled = tuple(self._settled), []
        claim = outbox.ClaimRound(
            self.options.owner,
            self.clock(),
            self.options.lease,
            self.options.per_partner,
            dict(self._inflight),
            frozenset(self._items),
            settled,
        )
        # The marks are never put back for a later round, even if this one raised or its caller
        # was cancelled: the claim may have committed anyway (a queued write runs whatever
        # became of its caller; a commit can fail after it took), and a mark applied later
        # could settle a row a replay made due that this round claimed again. A row whose mark
        # is lost comes back when its lease runs out, and the worker finds it settled.
        claimed = await self.store.write(SetWise(outbox.claim_rounds, claim))
        for each in claimed:
            self._start(each)
        return len(claimed)

    def _start(self, claimed: outbox.Claimed) -> None:
        item = claimed.item
        self._inflight[item.partner_id] = self._inflight.get(item.partner_id, 0) + 1
        self._items[item.id] = item
        task = asyncio.create_task(self._handle(claimed), name=f"deliver-{item.disclosure_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, claimed: outbox.Claimed) -> None:
        item = claimed.item
        envelope = Envelope(
            item.disclosure_id, item.partner_id, item.envelope, item.digest, attempt=item.attempts
        )
        try:
            verdict = await self._attempt(claimed, envelope)
            await self._settle(item, envelope, verdict)
        except asyncio.CancelledError:
            raise  # stopping: `drain` gives the row back (it stays in `_items`)
        except Exception as exc:  # never lose the row: its lease runs out and it comes back
            log.error(
                "embedded_outcome_unrecorded",
                disclosure_id=item.disclosure_id,
                error_type=type(exc).__name__,
            )
            self._items.pop(item.id, None)
        else:
            self._items.pop(item.id, None)
        finally:
            self._inflight[item.partner_id] -= 1
            self._wake.set()

    async def _attempt(self, claimed: outbox.Claimed, envelope: Envelope) -> Verdict:
        """The worker's verdict; an attempt that raised is a transient failure like any other,
        so its retries run out into a recorded `failed`, never a silent loop."""
        try:
            return await self.worker.attempt(envelope, known=claimed.disclosure)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the type only: exception texts may carry personal values
            log.error(
                "embedded_delivery_failed",
                disclosure_id=envelope.message_id,
                error_type=type(exc).__name__,
            )
            known = claimed.disclosure
            return Transient(HANDLER_ERROR, agreement_id=known.agreement_id if known else None)

    async def _settle(self, item: outbox.OutboxItem, envelope: Envelope, verdict: Verdict) -> None:
        owner, now = self.options.owner, self.clock()
        if isinstance(verdict, Finished):
            # The outcome is recorded already; the row's state is the queue's own bookkeeping,
            # written by the claim this delivery's free slot sets off (one commit, not two).
            state = outbox.DELIVERED if verdict.outcome != "failed" else "dead"
            self._settled.append(outbox.Mark(item.id, owner, state, now))
        elif isinstance(verdict, OnHold):
            await self.worker.hold(envelope, verdict.reason, self.options.hold_recheck, refund=True)
        elif isinstance(verdict, Transient):
            policy = self.worker.retry_policy(verdict.agreement_id)
            step = policy.next_step(envelope.attempt, not_before=verdict.retry_after)
            if isinstance(step, GiveUp):
                await self.worker.give_up(envelope, verdict.reason)
                return
            await self.worker.note_retry(envelope, verdict.reason, step.tier.delay)
            due = now + step.tier.delay

            async def release(conn: Connection) -> None:
                await outbox.release(conn, item.id, owner=owner, available_at=due)

            await self.store.write(release)
        elif isinstance(verdict, Failed):
            pass  # recorded failed, and the row dead, by the worker in one transaction

    async def drain(self, grace: float) -> None:
        """Let in-flight deliveries finish within `grace` seconds; give the rest back."""
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        left, settled = list(self._items.values()), list(self._settled)
        self._settled.clear()
        if not left and not settled:
            return
        now = self.clock()

        async def release(conn: Connection) -> None:
            await conn.run_sync(outbox.mark_each, settled)
            for item in left:
                await outbox.release(conn, item.id, owner=self.options.owner, available_at=now)

        await self.store.write(release)
        if left:
            log.info("embedded_released_on_stop", count=len(left))
