"""Per-client and per-address limits of the HTTP listener: requests in flight, and a token
bucket for unauthenticated receipts. Per process: under gunicorn each process keeps its own."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class InFlight:
    """At most `limit` requests in flight per key (a client, or a source address)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counts: dict[str, int] = {}

    @contextmanager
    def slot(self, key: str) -> Iterator[bool]:
        """Yields True and holds a slot while there is one; yields False when `key` is full."""
        count = self._counts.get(key, 0)
        if count >= self.limit:
            yield False
            return
        self._counts[key] = count + 1
        try:
            yield True
        finally:
            left = self._counts[key] - 1
            if left:
                self._counts[key] = left
            else:
                del self._counts[key]


class TokenBuckets:
    """`rate` requests a second per key with bursts up to `burst`; the least recently seen
    keys are forgotten past `max_keys`, so a flood of addresses cannot exhaust memory."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.rate, self.burst, self._clock, self._max_keys = rate, burst, clock, max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> int:
        """Take one token: 0 when allowed, else the whole seconds to wait (for Retry-After)."""
        now = self._clock()
        tokens, then = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        wait = 0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = max(1, math.ceil((1.0 - tokens) / self.rate))
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait


class ListenerLimits:
    """The limits one HTTP listener enforces, built from the settings."""

    def __init__(
        self, *, in_flight: int, receipt_rate: float, receipt_burst: int, body_timeout: float
    ) -> None:
        self.in_flight = InFlight(in_flight)
        self.receipts = TokenBuckets(receipt_rate, receipt_burst)
        self.body_timeout = body_timeout
