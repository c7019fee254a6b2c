"""Work done in a child process of this service, over a socket pair the event loop drives itself.

The seal worker (`seal_pool`) and the disclosure writer (`write_pool`) each run one. The child
is spawned (not forked: the parent has threads), says READY once it has imported what it needs,
then reads pickled batches of jobs and writes pickled lists of answers, oldest jobs first,
framed as `multiprocessing.Connection` frames them (4-byte length, then the data), so the
child uses a plain `Connection`. The parent uses asyncio streams on a duplicate of its end: no
executor threads, whose hand-offs would cost as much as the work.

Jobs submitted in the same loop iteration travel as one message. A caller gets None instead of
an answer whenever the child cannot give one (not started, died, or silent past `timeout`:
wedged, not dead; one watchdog task checks the oldest jobs a few times a second, rather than a
timer per job), and then does the work itself: the pool is an optimisation, never the only way.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import os
import pickle
import socket
import struct
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Generic, TypeVar

import structlog

log = structlog.get_logger("gateway.worker_link")
J = TypeVar("J")
A = TypeVar("A")
HEADER = struct.Struct("!i")  # multiprocessing.Connection's framing: 4-byte length, then data
READY = b"ready"
START_TIMEOUT_SECONDS = 60.0  # a spawned worker imports for 1-2 s; a slow machine, longer


def say_ready(connection: Connection) -> None:
    """In the child: imported and set up; the parent may send work.

    What the child holds by now (modules, keys, an engine) lives as long as it does: freed of
    garbage and then exempted from the cyclic collector, as the API process does after start-up
    (`server.settle_heap`). Otherwise every full collection walks it all again: 43-53 ms
    measured in each child, with every request waiting on that child stalled.
    """
    gc.collect()
    gc.freeze()
    connection.send_bytes(READY)


def answer(connection: Connection, answers: list[Any]) -> None:
    """In the child: answers to the oldest jobs not yet answered, in order."""
    connection.send_bytes(pickle.dumps(answers, protocol=pickle.HIGHEST_PROTOCOL))


def receive(connection: Connection) -> list[Any]:
    """In the child: the next batch of jobs; EOFError once the parent has gone."""
    jobs: list[Any] = pickle.loads(connection.recv_bytes())  # noqa: S301 - our parent
    return jobs


class WorkerPool(Generic[J, A]):
    """`submit(job)` to a child running `target(connection, *args)`; None: do it yourself."""

    def __init__(
        self, target: Callable[..., None], args: tuple[Any, ...], *, name: str, timeout: float
    ) -> None:
        self._target, self._args, self._name, self._timeout = target, args, name, timeout
        self.process: Any = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._jobs: list[J] = []
        self._futures: list[asyncio.Future[A | None]] = []
        # Answered in the order sent; with the loop time each was sent at.
        self._in_flight: deque[tuple[asyncio.Future[A | None], float]] = deque()
        self._reading: asyncio.Task[None] | None = None
        self._watching: asyncio.Task[None] | None = None
        self._closing = False  # set by close(): the child's end of the socket is then expected
        self.ready = False  # the child has started and answers; until then, callers do the work

    @property
    def usable(self) -> bool:
        """Jobs may be submitted (the child may still turn out to have died: they get None)."""
        return self._writer is not None and not self._writer.is_closing()

    async def start(self) -> None:
        """Spawn the child, connect, and wait for READY (work sent before would wait 1-2 s)."""
        ours, theirs = multiprocessing.Pipe(duplex=True)
        context = multiprocessing.get_context("spawn")
        self.process = context.Process(
            target=self._target, args=(theirs, *self._args), name=self._name, daemon=True
        )
        self.process.start()
        theirs.close()
        sock = socket.socket(fileno=os.dup(ours.fileno()))  # the loop reads and writes it
        ours.close()
        self._reader, self._writer = await asyncio.open_connection(sock=sock)
        try:
            size = HEADER.unpack(
                await asyncio.wait_for(self._reader.readexactly(HEADER.size), START_TIMEOUT_SECONDS)
            )[0]
            self.ready = await self._reader.readexactly(size) == READY
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
            log.error("worker_not_started", worker=self._name, error_type=type(exc).__name__)
        if not self.ready:  # callers do the work, as with a child that died
            self._writer.close()
            return
        self._reading = asyncio.create_task(self._read_answers(), name=f"{self._name}-answers")
        self._watching = asyncio.create_task(self._watch(), name=f"{self._name}-watchdog")

    async def submit(self, job: J) -> A | None:
        """The child's answer to `job`, or None if it cannot give one."""
        if not self.usable:
            return None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[A | None] = loop.create_future()
        if not self._jobs:  # the first of this loop iteration: send them all soon
            loop.call_soon(self._send)
        self._jobs.append(job)
        self._futures.append(future)
        return await future

    def _send(self) -> None:
        jobs, futures, self._jobs, self._futures = self._jobs, self._futures, [], []
        if self._writer is None or self._writer.is_closing():
            for future in futures:
                _settle(future, None)
            return
        data = pickle.dumps(jobs, protocol=pickle.HIGHEST_PROTOCOL)
        sent = asyncio.get_running_loop().time()
        self._in_flight.extend((future, sent) for future in futures)
        self._writer.write(HEADER.pack(len(data)) + data)

    async def _read_answers(self) -> None:
        assert self._reader is not None
        try:
            while True:
                size = HEADER.unpack(await self._reader.readexactly(HEADER.size))[0]
                answers = pickle.loads(await self._reader.readexactly(size))  # noqa: S301
                for each in answers:
                    _settle(self._in_flight.popleft()[0], each)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            if not self._closing:
                log.error("worker_lost", worker=self._name, error_type=type(exc).__name__)
        finally:
            if self._writer is not None:
                self._writer.close()
            while self._in_flight:  # done by their callers instead
                _settle(self._in_flight.popleft()[0], None)

    async def _watch(self) -> None:
        """Let callers do themselves what the child has left unanswered too long (wedged)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._timeout / 4)
            limit = loop.time() - self._timeout
            late = []
            for future, sent in self._in_flight:  # oldest first: stop at the first on time
                if sent > limit:
                    break
                if not future.done():
                    late.append(future)
            if late:
                log.error("worker_slow", worker=self._name, seconds=self._timeout, jobs=len(late))
                for future in late:
                    _settle(future, None)

    async def close(self) -> None:
        """Stop the child (jobs still waiting get None: their callers finish them)."""
        self._closing = True
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
        if self._watching is not None:
            self._watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watching
        if self._reading is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading
        if self.process is not None:
            await asyncio.to_thread(self.process.join, 5)
            if self.process.is_alive():
                self.process.kill()


def _settle(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():  # the caller stopped waiting (timed out, or went away)
        future.set_result(result)
