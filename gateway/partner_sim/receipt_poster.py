"""Async receipts: POST a signed receipt to the gateway's /v1/receipts later, with retries.

Delays between attempts come from the project's RetryPolicy. A 2xx is delivered; a network
error, 408, 425, 429 or 5xx is tried again; any other answer is a refusal we do not repeat
(the gateway said the receipt is wrong, and sending it again cannot fix that).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import structlog

from gateway.partner_sim.ledger import LedgerEntry
from gateway.queue.retry import GiveUp, RetryPolicy

JOSE = "application/jose"
DEFAULT_RECEIPT_RETRY = RetryPolicy(
    delays=(
        timedelta(milliseconds=200),
        timedelta(seconds=1),
        timedelta(seconds=5),
        timedelta(seconds=30),
        timedelta(minutes=2),
    ),
    max_attempts=8,
)
_RETRY_STATUSES = frozenset({408, 425, 429})

log = structlog.get_logger("gateway.partner_sim")


class ReceiptPoster:
    """Background tasks, one per message id, each posting one receipt until it lands."""

    def __init__(
        self,
        url: str,
        session: Callable[[], aiohttp.ClientSession],
        *,
        policy: RetryPolicy = DEFAULT_RECEIPT_RETRY,
        timeout_s: float = 10.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self._url = url
        self._session = session
        self._policy = policy
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._sleep = sleep
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def pending(self) -> int:
        """Receipts still being posted."""
        return len(self._tasks)

    def post(self, entry: LedgerEntry, token: bytes, *, delay_s: float = 0.0) -> None:
        """Post this receipt in the background (once per message id at a time)."""
        if entry.message_id in self._tasks:
            return  # the one under way carries the same receipt
        entry.async_receipt = {"state": "pending", "attempts": 0, "last_status": None}
        task = asyncio.create_task(self._run(entry, token, delay_s))
        self._tasks[entry.message_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(entry.message_id, None))

    async def drain(self) -> None:
        """Wait until every receipt under way has landed or been given up."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def close(self) -> None:
        """Stop posting (on shutdown); unfinished receipts stay `pending` in the ledger."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, entry: LedgerEntry, token: bytes, delay_s: float) -> None:
        state = entry.async_receipt
        assert state is not None
        if delay_s > 0:
            await self._sleep(delay_s)
        attempt = 0
        while True:
            attempt += 1
            state["attempts"] = attempt
            status, error = await self._attempt(token)
            state["last_status"], state["error"] = status, error
            if status is not None and 200 <= status < 300:
                state["state"] = "delivered"
                return
            if status is not None and status < 500 and status not in _RETRY_STATUSES:
                state["state"] = "refused"
                log.warning("receipt_refused", message_id=entry.message_id, status_code=status)
                return
            step = self._policy.next_step(attempt)
            if isinstance(step, GiveUp):
                state["state"] = "gave_up"
                log.warning("receipt_gave_up", message_id=entry.message_id, attempts=attempt)
                return
            await self._sleep(step.tier.delay.total_seconds())

    async def _attempt(self, token: bytes) -> tuple[int | None, str | None]:
        try:
            async with self._session().post(
                self._url, data=token, headers={"Content-Type": JOSE}, timeout=self._timeout
            ) as response:
                await response.read()
                return response.status, None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return None, type(exc).__name__
