"""The retry policy: growing delays between delivery attempts, then a dead letter.

Pure: no clock, no broker. The RabbitMQ topology turns each delay into a delay queue (a "tier")
and the transport asks the policy which tier a failed attempt goes to next.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from gateway.errors import ConfigurationError

DEFAULT_DELAYS = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(hours=1),
)
DEFAULT_MAX_ATTEMPTS = 6  # the first try plus one retry per default delay

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DELAY_TEXT = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)\s*$")


class RetryPolicyError(ConfigurationError):
    """A retry policy that cannot work (no delays, shrinking delays, no attempts)."""

    code = "retry_policy_invalid"


def delay_name(delay: timedelta) -> str:
    """A short, stable name for a delay ("200ms", "5s", "2m", "1h"), used in queue names."""
    millis = _millis(delay)
    for unit in ("d", "h", "m", "s"):
        size = _UNITS_MS[unit]
        if millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis}ms"


def parse_delay(text: str) -> timedelta:
    """Read a delay written as a number and a unit (ms, s, m, h, d), e.g. "30s" or "2m"."""
    match = _DELAY_TEXT.match(text)
    if match is None:
        raise RetryPolicyError(f"retry delay {text!r} is not a number followed by ms, s, m, h or d")
    return timedelta(milliseconds=int(match[1]) * _UNITS_MS[match[2]])


def _millis(delay: timedelta) -> int:
    return math.floor(delay / timedelta(milliseconds=1))


@dataclass(frozen=True, slots=True)
class DelayTier:
    """One delay queue's worth of waiting: its name and how long a message waits in it."""

    name: str
    delay: timedelta

    @property
    def ttl_ms(self) -> int:
        """The per-queue message TTL RabbitMQ needs, in whole milliseconds."""
        return _millis(self.delay)


@dataclass(frozen=True, slots=True)
class RetryAfter:
    """Try again after waiting in this tier; `attempt` is the number the next try will carry."""

    tier: DelayTier
    attempt: int


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Attempts are exhausted: dead-letter the message."""

    attempts: int
    reason: str = "attempts_exhausted"


Step = RetryAfter | GiveUp


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Growing delays between attempts and a cap on attempts, after which a message dead-letters.

    Attempt n (1-based) that fails waits `delays[n-1]` (the last delay repeats when there are
    more attempts than delays) unless n has reached `max_attempts`.
    """

    delays: tuple[timedelta, ...] = DEFAULT_DELAYS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS

    def __post_init__(self) -> None:
        if not self.delays:
            raise RetryPolicyError("a retry policy needs at least one delay")
        if self.max_attempts < 1:
            raise RetryPolicyError("max_attempts must be at least 1")
        if any(_millis(d) < 1 for d in self.delays):
            raise RetryPolicyError("every retry delay must be at least 1ms")
        if any(b < a for a, b in zip(self.delays, self.delays[1:], strict=False)):
            raise RetryPolicyError("retry delays must not shrink from one attempt to the next")

    @classmethod
    def parse(cls, delays: str, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> RetryPolicy:
        """Build a policy from configuration text such as "5s,30s,2m,10m,1h"."""
        parts = [part for part in delays.split(",") if part.strip()]
        return cls(tuple(parse_delay(part) for part in parts), max_attempts)

    @property
    def tiers(self) -> tuple[DelayTier, ...]:
        """The distinct delay tiers this policy can use, shortest first."""
        return tiers_of([self])

    def next_step(self, failed_attempt: int, *, not_before: float | None = None) -> Step:
        """After attempt `failed_attempt` failed: which tier to wait in, or give up.

        `not_before` (seconds, e.g. from a partner's Retry-After) picks a longer tier of this
        policy when the scheduled one would be too short; it never extends past the longest.
        """
        if failed_attempt < 1:
            raise ValueError("attempts are numbered from 1")
        if failed_attempt >= self.max_attempts:
            return GiveUp(attempts=failed_attempt)
        delay = self.delays[min(failed_attempt, len(self.delays)) - 1]
        if not_before is not None and delay.total_seconds() < not_before:
            longer = [d for d in self.delays if d.total_seconds() >= not_before]
            delay = longer[0] if longer else self.delays[-1]
        return RetryAfter(tier=DelayTier(delay_name(delay), delay), attempt=failed_attempt + 1)

    @property
    def total_delay(self) -> timedelta:
        """How long a message can spend waiting in delay queues before it dead-letters."""
        waits = [self.delays[min(n, len(self.delays)) - 1] for n in range(1, self.max_attempts)]
        return sum(waits, timedelta())


def tiers_of(policies: Iterable[RetryPolicy]) -> tuple[DelayTier, ...]:
    """The union of the delay tiers of several policies (one delay queue each), shortest first."""
    by_name = {delay_name(d): d for policy in policies for d in policy.delays}
    return tuple(sorted((DelayTier(n, d) for n, d in by_name.items()), key=lambda t: t.delay))
