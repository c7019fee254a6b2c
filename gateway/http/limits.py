"""Limits of the HTTP listener.

Requests in flight per client or source address are counted in this process: they guard this
process's own memory and tasks. The rate of unauthenticated receipts per source address is kept
by the `limits` library in `GATEWAY_RATE_LIMIT_STORAGE`: this process's memory by default (so
each API process allows the full rate), or a Redis or Valkey server that every API process
shares (one rate for the whole deployment).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from limits import RateLimitItemPerSecond
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from gateway.application.receipt_intake import RateLimitedLog
from gateway.trusted_proxies import Network

log = structlog.get_logger("gateway.http")


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


class ReceiptRate:
    """`burst` receipts per source address in any moving window of `burst / rate` seconds."""

    def __init__(self, rate: float, burst: int, storage: str) -> None:
        self.window = max(1, math.ceil(burst / rate))
        self._item = RateLimitItemPerSecond(burst, self.window)
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage, wrap_exceptions=True))
        self._store_log = RateLimitedLog(log)

    async def take(self, address: str) -> int:
        """Count one receipt: 0 when allowed, else the whole seconds to wait (Retry-After)."""
        try:
            if await self._limiter.hit(self._item, "receipts", address):
                return 0
            stats = await self._limiter.get_window_stats(self._item, "receipts", address)
        except StorageError as exc:
            # A partner's receipts matter more than the limit: let it through (the in-flight
            # limit still holds) and say so.
            self._store_log.warning(
                "rate_limit_store_unavailable", error=type(exc.storage_error).__name__
            )
            return 0
        return max(1, math.ceil(stats.reset_time - time.time()))


class ListenerLimits:
    """The limits one HTTP listener enforces, built from the settings."""

    def __init__(
        self,
        *,
        in_flight: int,
        receipt_rate: float,
        receipt_burst: int,
        rate_storage: str,
        body_timeout: float,
        trusted_proxies: tuple[Network, ...] = (),
    ) -> None:
        self.in_flight = InFlight(in_flight)
        self.receipts = ReceiptRate(receipt_rate, receipt_burst, rate_storage)
        self.body_timeout = body_timeout
        self.trusted_proxies = trusted_proxies  # whose X-Forwarded-For names the source address
