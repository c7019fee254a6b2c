"""Sealing in a worker process, so the event loop's core is not the one that signs and encrypts.

An API process is CPU-bound in one Python thread, and a seal (ES256 signature and ECDH-ES
encryption, ~300 µs) is a third of each accepted request; the GIL keeps a thread from doing it
alongside. A worker process can: it seals while the loop parses and records the next requests.

The worker reads the council's signing key from the keys directory itself (no key crosses the
pipe); the minimised claims reach it over a socket pair between two processes of this service
and are written nowhere. Seals asked for in the same loop iteration travel to it as one message,
and each envelope comes back as soon as it is sealed (a request does not wait for the rest of
its batch); the loop itself reads and writes the socket (no executor threads: their hand-offs
cost as much as the seal). If the worker fails an item, or dies, the item is sealed here
instead, so a caller sees exactly the result or the error of `gateway.sealing.seal`; so does a
worker that has not answered within two seconds (wedged, not dead): one watchdog task checks
the oldest seals in flight a few times a second, rather than a timer per seal.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import pickle
import socket
import struct
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import structlog

from gateway.keys import CouncilKeyring
from gateway.partner_keys import PartnerKey
from gateway.sealing import EnvelopeClaims, SealedEnvelope, check_recipient, seal, seal_jwt

log = structlog.get_logger("gateway.seal_pool")
_HEADER = struct.Struct("!i")  # multiprocessing.Connection's framing: 4-byte length, then data
# Plain data both ways (pickled several times faster than the dataclasses): the claims set, its
# iat (which council key signs), the partner key's kid and JWK; the envelope's four fields back.
Job = tuple[dict[str, Any], datetime, str, dict[str, Any]]
AnswerFields = tuple[bytes, str, str, str]
WORKER_TIMEOUT_SECONDS = 2.0  # a seal takes ~0.3 ms; a worker this late is wedged
START_TIMEOUT_SECONDS = 60.0  # a spawned worker imports for 1-2 s; a slow machine, longer
READY = b"ready"


def _work(connection: Connection, keys_dir: str) -> None:
    """The worker: answer each job of a batch, in order, as soon as it is sealed (None: failed)."""
    keyring = CouncilKeyring(Path(keys_dir))
    connection.send_bytes(READY)  # imported and holding the keyring: the parent may send work
    while True:
        try:
            jobs: list[Job] = pickle.loads(connection.recv_bytes())  # noqa: S301 - our parent
        except EOFError:
            return  # the service stopped (or died): nothing more to seal
        for jwt, iat, kid, jwk in jobs:
            answer: AnswerFields | None
            try:
                sealed = seal_jwt(jwt, keyring.active_signer(iat), kid, jwk)
                answer = (sealed.body, sealed.digest, sealed.signing_kid, sealed.encryption_kid)
            except Exception:  # the parent seals it again in-line, and raises the real error
                answer = None
            connection.send_bytes(pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL))


Answer = asyncio.Future[AnswerFields | None]


@dataclass
class _Batch:
    jobs: list[Job] = field(default_factory=list)
    futures: list[Answer] = field(default_factory=list)


class SealPool:
    """`seal` as in `gateway.sealing`, run in a worker process; same results, same errors."""

    def __init__(self, keys_dir: Path) -> None:
        self._keys_dir = keys_dir
        self._keyring = CouncilKeyring(keys_dir)  # for sealing in-line when the worker cannot
        self._process: Any = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._next = _Batch()
        # Answered one by one, in the order sent; with the loop time each was sent at.
        self._in_flight: deque[tuple[Answer, float]] = deque()
        self._reading: asyncio.Task[None] | None = None
        self._watching: asyncio.Task[None] | None = None
        self._closing = False  # set by close(): the worker's end of the socket is then expected
        self.ready = False  # the worker has started and answers; until then, seals are in-line

    async def start(self) -> None:
        """Spawn the worker and connect to it (spawn, not fork: the parent has threads)."""
        ours, theirs = multiprocessing.Pipe(duplex=True)
        context = multiprocessing.get_context("spawn")
        self._process = context.Process(
            target=_work, args=(theirs, str(self._keys_dir)), name="gatehouse-sealer", daemon=True
        )
        self._process.start()
        theirs.close()
        sock = socket.socket(fileno=os.dup(ours.fileno()))  # the loop reads and writes it
        ours.close()
        self._reader, self._writer = await asyncio.open_connection(sock=sock)
        # Wait for the worker's imports: requests sent before would wait on them (1-2 s), or
        # past WORKER_TIMEOUT_SECONDS be sealed in-line as if the worker were wedged.
        try:
            size = _HEADER.unpack(
                await asyncio.wait_for(
                    self._reader.readexactly(_HEADER.size), START_TIMEOUT_SECONDS
                )
            )[0]
            self.ready = await self._reader.readexactly(size) == READY
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
            log.error("seal_worker_not_started", error_type=type(exc).__name__)
        if not self.ready:  # seal in-line, as with a worker that died
            self._writer.close()
            return
        self._reading = asyncio.create_task(self._read_answers(), name="seal-answers")
        self._watching = asyncio.create_task(self._watch(), name="seal-watchdog")

    async def seal(self, claims: EnvelopeClaims, recipient: PartnerKey) -> SealedEnvelope:
        """Sign with the active council key and encrypt for `recipient`."""
        if self._writer is not None and not self._writer.is_closing():
            check_recipient(claims, recipient)  # refused here, as `seal` would
            future: Answer = asyncio.get_running_loop().create_future()
            if not self._next.jobs:  # the first of this loop iteration: send them all soon
                asyncio.get_running_loop().call_soon(self._send)
            self._next.jobs.append(
                (claims.to_jwt(), claims.iat, recipient.kid, dict(recipient.jwk))
            )
            self._next.futures.append(future)
            answer = await future  # None past WORKER_TIMEOUT_SECONDS: see _watch
            if answer is not None:
                return SealedEnvelope(*answer)
        # No worker, or it failed this one: here, for the real error.
        return seal(claims, self._keyring.active_signer(claims.iat), recipient)

    def _send(self) -> None:
        batch, self._next = self._next, _Batch()
        if self._writer is None or self._writer.is_closing():
            for future in batch.futures:
                _answer(future, None)
            return
        data = pickle.dumps(batch.jobs, protocol=pickle.HIGHEST_PROTOCOL)
        sent = asyncio.get_running_loop().time()
        self._in_flight.extend((future, sent) for future in batch.futures)
        self._writer.write(_HEADER.pack(len(data)) + data)

    async def _read_answers(self) -> None:
        assert self._reader is not None
        try:
            while True:
                size = _HEADER.unpack(await self._reader.readexactly(_HEADER.size))[0]
                answer = pickle.loads(await self._reader.readexactly(size))  # noqa: S301
                _answer(self._in_flight.popleft()[0], answer)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            if not self._closing:
                log.error("seal_worker_lost", error_type=type(exc).__name__)
        finally:
            if self._writer is not None:
                self._writer.close()
            while self._in_flight:  # sealed in-line by their callers instead
                _answer(self._in_flight.popleft()[0], None)

    async def _watch(self) -> None:
        """Let callers seal in-line what the worker has left unanswered too long (wedged)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(WORKER_TIMEOUT_SECONDS / 4)
            limit = loop.time() - WORKER_TIMEOUT_SECONDS
            late = []
            for future, sent in self._in_flight:  # oldest first: stop at the first on time
                if sent > limit:
                    break
                if not future.done():
                    late.append(future)
            if late:
                log.error("seal_worker_slow", seconds=WORKER_TIMEOUT_SECONDS, seals=len(late))
                for future in late:
                    _answer(future, None)

    async def close(self) -> None:
        """Stop the worker (seals still waiting are finished in-line)."""
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
        if self._process is not None:
            await asyncio.to_thread(self._process.join, 5)
            if self._process.is_alive():
                self._process.kill()


def _answer(future: Answer, answer: AnswerFields | None) -> None:
    if not future.done():  # the caller stopped waiting (timed out, or went away)
        future.set_result(answer)
