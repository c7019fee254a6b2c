"""What travels through the broker and what a consumer decides: pure types and the settle rule.

Kept apart from the aio-pika code so the delivery worker (and the embedded queue) can use the
same actions and the same retry arithmetic without a broker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from gateway.queue.retry import DelayTier, GiveUp, RetryPolicy

HEADER_ATTEMPT = "gatehouse-attempt"
HEADER_PARTNER = "gatehouse-partner"
HEADER_REASON = "gatehouse-reason"  # the code of the last failure, e.g. partner_server_error
HEADER_DEAD_REASON = "gatehouse-dead-reason"
HEADER_REPLAYS = "gatehouse-replays"


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One sealed envelope to publish; `message_id` is the disclosure id (the JWT `jti`)."""

    message_id: str
    partner_id: str
    body: bytes
    attempt: int = 1
    content_type: str = "application/jose"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message as a consumer sees it."""

    message_id: str
    partner_id: str
    body: bytes
    attempt: int
    redelivered: bool = False
    delivery_count: int = 0  # broker redeliveries after crashes (quorum x-delivery-count)
    last_reason: str | None = None
    replays: int = 0
    content_type: str = "application/jose"


@dataclass(frozen=True, slots=True)
class Ack:
    """Done with this message (delivered, receipted, or recorded as failed elsewhere)."""


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again later; `not_before` (seconds) carries a partner's Retry-After.

    `policy` is the retry policy of the disclosure's agreement (its delay tiers must be declared:
    `RabbitTransport.ensure_tiers`); without one, the partner queue's policy applies.
    """

    reason: str
    not_before: float | None = None
    policy: RetryPolicy | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Never try again: park it in the partner's dead-letter queue with this reason code."""

    reason: str


@dataclass(frozen=True, slots=True)
class Defer:
    """Try again later without spending an attempt: the outcome could not be recorded now.

    A handler that cannot write `failed` (the database is away) must not let the transport
    dead-letter the message, so the message waits in the policy's longest delay tier instead.
    """

    reason: str
    policy: RetryPolicy | None = None


Action = Ack | Retry | DeadLetter | Defer
Handler = Callable[[Delivery], Awaitable[Action]]


@dataclass(frozen=True, slots=True)
class Acked:
    """Settled: acknowledged and gone."""


@dataclass(frozen=True, slots=True)
class Delayed:
    """Settled: waiting in a delay queue; it comes back as attempt `attempt`."""

    tier: DelayTier
    attempt: int
    reason: str


@dataclass(frozen=True, slots=True)
class DeadLettered:
    """Settled: in the dead-letter queue; `last_reason` is the failure that led there."""

    reason: str
    last_reason: str | None = None


Settlement = Acked | Delayed | DeadLettered


def settle(action: Action, delivery: Delivery, policy: RetryPolicy) -> Settlement:
    """What the transport will do with a consumer's action (a worker may ask in advance)."""
    if isinstance(action, Ack):
        return Acked()
    if isinstance(action, DeadLetter):
        return DeadLettered(action.reason, delivery.last_reason)
    if isinstance(action, Defer):
        longest = (action.policy or policy).tiers[-1]
        return Delayed(longest, delivery.attempt, action.reason)
    step = (action.policy or policy).next_step(delivery.attempt, not_before=action.not_before)
    if isinstance(step, GiveUp):
        return DeadLettered(step.reason, action.reason)
    return Delayed(step.tier, step.attempt, action.reason)


@dataclass(frozen=True, slots=True)
class PublishReport:
    """Which messages the broker confirmed, and why the others were not (reason codes)."""

    confirmed: tuple[str, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What a dead-letter replay moved back to the deliveries exchange."""

    replayed: tuple[str, ...] = ()
    left: int = 0  # messages still in the dead-letter queue after the replay


@dataclass(frozen=True, slots=True)
class ParkedLetter:
    """A message found in a partner's dead-letter queue, and why it was parked there."""

    message_id: str
    partner_id: str
    reason: str | None  # our dead-letter reason, else the broker's (e.g. delivery_limit)
    replays: int = 0  # how often this copy had been replayed when it was parked


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """Messages (quorum queues count unacknowledged ones too) and consumers of one queue."""

    queue: str
    messages: int
    consumers: int
