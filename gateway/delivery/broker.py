"""Delivery over RabbitMQ: one consumer per partner queue, the worker's verdicts as broker actions.

A verdict maps to what the transport does with the message: finished -> ack; transient ->
retry through the delay tier the partner's policy picks (asked in advance with `settle`, so a
message that would dead-letter is first recorded `failed`); failed -> dead letter; held (the
agreement is suspended) -> ack, with the outbox row made due again later for the relay to
publish afresh, so a suspension of any length never spends attempts. An attempt that raised
is transient too; when `failed` cannot be written, the message is deferred, never dead-lettered.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog

from gateway.application.channel import Envelope
from gateway.delivery import retries
from gateway.delivery.worker import (
    ATTEMPTS_EXHAUSTED,
    HANDLER_ERROR,
    DeliveryWorker,
    Failed,
    Finished,
    OnHold,
)
from gateway.jose import b64url_digest
from gateway.policy_cache import PolicyCache
from gateway.queue.messages import (
    Ack,
    Action,
    DeadLetter,
    DeadLettered,
    Defer,
    Delayed,
    Delivery,
    Retry,
    settle,
)
from gateway.queue.rabbit import RabbitTransport
from gateway.queue.retry import RetryPolicy
from gateway.queue.topology import Topology, TopologyError, build_topology, check_partner_id
from gateway.store.disclosure_model import Status

log = structlog.get_logger("gateway.delivery.broker")
BROKER_DELIVERY_LIMIT = "delivery_limit"  # RabbitMQ's own name for a spent x-delivery-limit


def topology_for(
    prefix: str, policy: PolicyCache, default: RetryPolicy, delivery_limit: int
) -> Topology:
    """Queues for every partner the policy knows (ids a queue name cannot hold are skipped)."""
    snapshot = policy.snapshot
    partners = []
    for partner in snapshot.partners:
        try:
            partners.append(check_partner_id(partner))
        except TopologyError:
            log.error("partner_id_unusable_as_queue", partner=partner)
    overrides = retries.partner_overrides(snapshot.agreements, default)
    return build_topology(
        prefix,
        partners,
        default,
        partner_retry={p: r for p, r in overrides.items() if p in partners},
        delivery_limit=delivery_limit,
        agreement_retry=retries.agreement_policies(snapshot.agreements.values()),
    )


class BrokerDelivery:
    """Consumers for the partners' queues, fed to the delivery worker."""

    def __init__(
        self,
        worker: DeliveryWorker,
        transport: RabbitTransport,
        *,
        prefetch: int,
        hold_recheck: timedelta,
        default_retry: RetryPolicy,
    ) -> None:
        self.worker, self.transport = worker, transport
        self.prefetch, self.hold_recheck, self.default_retry = prefetch, hold_recheck, default_retry
        self._consuming: set[str] = set()
        self._lock = asyncio.Lock()

    async def consume_all(self) -> None:
        """Start consuming every partner queue already in the topology."""
        async with self._lock:
            fresh = [p for p in self.transport.topology.partners if p not in self._consuming]
            if fresh:
                await self.transport.consume(fresh, self.handle, prefetch=self.prefetch)
                self._consuming.update(fresh)

    async def partner_ready(self, partner: str) -> bool:
        """Declare a partner first seen in the outbox and consume its queue; False if unusable."""
        if partner in self._consuming:
            return True
        async with self._lock:
            if partner in self._consuming:
                return True
            try:
                check_partner_id(partner)
            except TopologyError:
                log.error("partner_id_unusable_as_queue", partner=partner)
                return False
            snapshot = self.worker.policy.snapshot
            policy = retries.for_partner(partner, snapshot.agreements.values(), self.default_retry)
            await self.transport.add_partner(partner, policy)
            await self.transport.consume([partner], self.handle, prefetch=self.prefetch)
            self._consuming.add(partner)
            log.info("partner_queue_added", partner=partner)
            return True

    async def handle(self, delivery: Delivery) -> Action:
        """One message from a partner queue: deliver, record, answer the transport.

        Whatever goes wrong, the message is never dead-lettered unless `failed` is written
        first: an attempt that raised (a poison reply, the database away) is retried, at the
        last attempt recorded failed, and when even that cannot be written, deferred.
        """
        envelope = Envelope(
            delivery.message_id,
            delivery.partner_id,
            delivery.body,
            b64url_digest(delivery.body),
            attempt=delivery.attempt,
            content_type=delivery.content_type,
        )
        try:
            if delivery.delivery_count >= self.transport.topology.delivery_limit:
                return await self._last_redelivery(envelope, delivery)
            return await self._deliver(envelope, delivery)
        except Exception as exc:  # the type only: exception texts may carry personal values
            log.error(
                "delivery_handler_failed",
                disclosure_id=delivery.message_id,
                partner=delivery.partner_id,
                attempt=delivery.attempt,
                error_type=type(exc).__name__,
            )
        policy = self.transport.topology.policy_for(delivery.partner_id)
        return await self._retry(envelope, delivery, HANDLER_ERROR, Retry(HANDLER_ERROR), policy)

    async def _last_redelivery(self, envelope: Envelope, delivery: Delivery) -> Action:
        """The broker's last redelivery (crashes or nacks spent `x-delivery-limit`): record it
        failed and dead-letter it ourselves, rather than try once more and, should that crash
        too, let the broker dead-letter it unrecorded."""
        found = await self.worker.disclosure(envelope.message_id)
        if found is None or found.status is not Status.QUEUED:
            return Ack()  # settled already: a duplicate, nothing to give up on
        await self.worker.give_up(envelope, BROKER_DELIVERY_LIMIT)
        return DeadLetter(ATTEMPTS_EXHAUSTED)

    async def _deliver(self, envelope: Envelope, delivery: Delivery) -> Action:
        verdict = await self.worker.attempt(envelope)
        if isinstance(verdict, Finished):
            return Ack()
        if isinstance(verdict, Failed):
            return DeadLetter(verdict.reason)
        if isinstance(verdict, OnHold):
            await self.worker.hold(envelope, verdict.reason, self.hold_recheck)
            return Ack()
        # The agreement's own retries, as on the embedded queue (its tiers declared first).
        policy = self.worker.retry_policy(verdict.agreement_id)
        await self.transport.ensure_tiers(policy)
        action = Retry(verdict.reason, not_before=verdict.retry_after, policy=policy)
        return await self._retry(envelope, delivery, verdict.reason, action, policy)

    async def _retry(
        self,
        envelope: Envelope,
        delivery: Delivery,
        reason: str,
        action: Retry,
        policy: RetryPolicy,
    ) -> Action:
        """Retry, or at the last attempt record `failed` and dead-letter; never one without
        the other (the database away: defer without spending the attempt)."""
        settlement = settle(action, delivery, policy)
        try:
            if isinstance(settlement, DeadLettered):
                await self.worker.give_up(envelope, reason)
                return DeadLetter(ATTEMPTS_EXHAUSTED)
            if isinstance(settlement, Delayed):
                await self.worker.note_retry(envelope, reason, settlement.tier.delay)
        except Exception as exc:
            log.error(
                "delivery_outcome_unrecorded",
                disclosure_id=delivery.message_id,
                partner=delivery.partner_id,
                error_type=type(exc).__name__,
            )
            if isinstance(settlement, DeadLettered):
                return Defer(reason, policy=policy)
        return action
