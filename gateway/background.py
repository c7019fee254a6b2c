"""Background loops of one process: a step every few seconds, started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from gateway.errors import DatabaseUnavailableError

log = structlog.get_logger("gateway.background")
Step = Callable[[], Awaitable[object]]


async def every(interval: float, step: Step, *, stop: asyncio.Event, failed: str) -> None:
    """Run `step` every `interval` seconds until `stop` is set.

    A failing step is logged as `failed` with the error's type, never its message, and the loop
    goes on; a database outage is logged once by the store, not once per step.
    """
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        if stop.is_set():
            return
        try:
            await step()
        except DatabaseUnavailableError:
            continue
        except Exception as exc:
            log.error(failed, error_type=type(exc).__name__)


class Loops:
    """The periodic work of one process; `stop` ends every loop and waits for it."""

    def __init__(self) -> None:
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, name: str, interval: float, step: Step, *, failed: str) -> None:
        """Run `step` every `interval` seconds from now on (call from a running loop)."""
        task = every(interval, step, stop=self._stop, failed=failed)
        self._tasks.append(asyncio.create_task(task, name=name))

    async def stop(self) -> None:
        """End every loop after its current step."""
        self._stop.set()
        await asyncio.gather(*self._tasks)
        self._tasks.clear()
        self._stop = asyncio.Event()
